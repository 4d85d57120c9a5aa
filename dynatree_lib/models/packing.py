"""CPU fast path: linear layers whose weights are packed once for oneDNN.

A decoding step of a small model on a CPU is bound by reading the weights. The
default float32 matmul (MKL sgemm) handles a few rows poorly: on this project's
2-core test CPU a cached step over 2-8 tokens cost up to 1.6x a one-token step,
and 2-8 tokens is exactly what a token tree feeds the target. Packing every
weight once into oneDNN's blocked layout makes a one-token step ~1.5x faster and
makes a step over up to ~8 tokens cost about the same as one
(``dynatree_lib.harness.costs.forward_cost_curve`` measures the curve on your machine).

Packing changes how fast the model runs, not what it computes (logits agree to
float32 rounding; a probe checks each layer), and it is applied to the model, so
every method that uses it, AR, the Hugging Face peers and the speculative
methods alike, runs on the same packed weights. Inference only: packed layers
have no gradients. Pack after moving the model to its device and dtype.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn


class PackedLinear(nn.Module):
    """A frozen ``nn.Linear`` with its weight in oneDNN's blocked layout (CPU, float32)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        # A plain attribute, not a buffer: the packed tensor is opaque to .to() and state_dict.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=oneDNN"


def packing_available(model: nn.Module) -> bool:
    """True when ``model`` is float32 on CPU and this PyTorch build has oneDNN linear packing."""
    try:
        param = next(model.parameters())
    except StopIteration:
        return False
    return (param.device.type == "cpu" and param.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


@torch.no_grad()
def pack_linear_weights(model: nn.Module) -> int:
    """Replace every ``nn.Linear`` of ``model`` by a :class:`PackedLinear`, in place.

    Returns the number of layers packed: 0 when packing is unavailable (GPU, not
    float32, no oneDNN, a model sharded across processes) or when a probe finds that a
    packed layer computes something else than the original, in which case the model is left
    untouched with a warning.
    """
    from .sharding import is_sharded

    if getattr(model, "_dynatree_packed", False) or not packing_available(model):
        return 0
    if is_sharded(model):
        return 0  # a sharded layer's weight is a distributed tensor: oneDNN cannot pack it
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if type(child) is nn.Linear]
    packed = []
    for _, _, linear in found:
        layer = PackedLinear(linear)
        probe = torch.randn(3, linear.in_features, generator=torch.Generator().manual_seed(0))
        want = nn.functional.linear(probe, linear.weight, linear.bias)
        if not torch.allclose(layer(probe), want, rtol=1e-4, atol=1e-4 * want.abs().max().item()):
            warnings.warn("oneDNN weight packing changed a layer's output; running unpacked", stacklevel=2)
            return 0
        packed.append(layer)
    for (parent, name, _), layer in zip(found, packed, strict=True):
        setattr(parent, name, layer)
    model._dynatree_packed = True
    return len(packed)
