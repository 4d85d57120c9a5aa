"""int8 weights with per-row scales: how the committed draft and head weights are stored.

Only what the target does not provide is committed, and int8 keeps those files small
enough to ship inside the package; loading dequantises to the model's dtype.
"""

from __future__ import annotations

import torch


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """int8 with one float32 scale per output row for matrices; other tensors as they are."""
    packed = {}
    for name, value in state.items():
        if value.dim() == 2 and value.is_floating_point():
            scale = value.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            packed[name + ".int8"] = torch.round(value / scale).to(torch.int8)
            packed[name + ".scale"] = scale.float()
        else:
            packed[name] = value
    return packed


def dequantize_state(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 state of a :func:`quantize_state` result."""
    state = {}
    for name, value in packed.items():
        if name.endswith(".int8"):
            base = name[: -len(".int8")]
            state[base] = value.float() * packed[base + ".scale"]
        elif not name.endswith(".scale"):
            state[name] = value
    return state
