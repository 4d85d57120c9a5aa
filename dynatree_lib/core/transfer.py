"""Host-to-device copies that do not wait for the device.

A plain ``torch.tensor(values, device="cuda")`` copies from pageable memory and blocks
until the copy is done, which means until every kernel queued before it has run: a read in
all but name. From pinned memory with ``non_blocking=True`` the copy is queued on the
stream like a kernel (PyTorch keeps the pinned block alive until it has run), so the loop
can send what it decided on the host (a path, committed tokens) without stalling.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_device(values: list[int] | list[float], device: torch.device | str,
              dtype: torch.dtype = torch.long) -> Tensor:
    """``values`` as a 1-D tensor on ``device``, queued without a wait on CUDA."""
    host = torch.tensor(values, dtype=dtype, device="cpu")   # explicit: a default device may be set
    if torch.device(device).type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
