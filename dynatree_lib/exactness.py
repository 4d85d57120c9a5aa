"""Checks of the exactness guarantee, usable by tests, the book and users.

* :func:`tree_logits_error`: per-node difference between tree verification and a
  sequential forward along the node's path (zero up to float rounding when
  positions are depths; large when they are BFS indices, as in the published code).
* :func:`compare_with_autoregressive`: runs a method and plain greedy decoding and
  reports the first divergence with the target's top-1/top-2 logit margin there.
  In float32/float64 outputs are identical; in float16/bfloat16 the batched tree
  forward rounds differently from the one-token forward, so a near-tie (small
  margin) can flip. The report tells whether a divergence is such a near-tie.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import DynamicCache

from .decode import generate
from .methods import Autoregressive, Method
from .tree import TokenTree
from .verify import tree_logits


@torch.inference_mode()
def tree_logits_error(target, prefix_ids: Tensor, tree: TokenTree, *,
                      depth_positions: bool = True) -> Tensor:
    """[n] max ``|logit difference|`` at each tree node, tree verification vs sequential forward.

    ``prefix_ids`` [1, P] are the committed tokens before the root. With
    ``depth_positions=False`` nodes get positions P + BFS index (the published bug).
    """
    prefix_ids = prefix_ids.to(target.device)
    prefix_len = prefix_ids.shape[1]
    cache = DynamicCache(config=target.config)
    target(prefix_ids, past_key_values=cache, use_cache=True)
    positions = None if depth_positions else (
        prefix_len + torch.arange(tree.size, device=target.device)).unsqueeze(0)
    got = tree_logits(target, cache, tree, prefix_len, position_ids=positions).float()
    errors = torch.empty(tree.size)
    for node in range(tree.size):
        path = tree.tokens[tree.ancestors[node]]
        sequence = torch.cat([prefix_ids[0], path]).unsqueeze(0)
        want = target(sequence).logits[0, -1].float()
        errors[node] = (got[node] - want).abs().max()
    return errors


@dataclass
class ExactnessReport:
    """Outcome of :func:`compare_with_autoregressive`."""

    identical: bool
    compared: int
    first_divergence: int | None = None
    reference_token: int | None = None
    method_token: int | None = None
    margin: float | None = None  # target's top-1 minus top-2 logit at the divergence

    def __str__(self) -> str:
        if self.identical:
            return f"identical to greedy autoregressive decoding ({self.compared} tokens)"
        return (f"diverges at new token {self.first_divergence}: greedy {self.reference_token}, "
                f"method {self.method_token}; target top-1/top-2 logit margin there "
                f"{self.margin:.4g}")


@torch.inference_mode()
def compare_with_autoregressive(target, draft, input_ids: Tensor, method: Method,
                                max_new_tokens: int = 64, eos_token_id=None) -> ExactnessReport:
    """Run ``method`` and greedy AR decoding in the models' own dtype and compare them."""
    reference = generate(target, None, input_ids, Autoregressive(), max_new_tokens,
                         eos_token_id).new_tokens
    tokens = generate(target, draft, input_ids, method, max_new_tokens, eos_token_id).new_tokens
    if tokens == reference:
        return ExactnessReport(True, len(tokens))
    i = next((j for j, (a, b) in enumerate(zip(reference, tokens, strict=False)) if a != b),
             min(len(reference), len(tokens)))
    context = torch.cat([input_ids[0].to(target.device),
                         torch.tensor(reference[:i], dtype=torch.long, device=target.device)])
    top2 = target(context.unsqueeze(0)).logits[0, -1].float().topk(2).values
    return ExactnessReport(False, min(len(reference), len(tokens)), i,
                           reference[i] if i < len(reference) else None,
                           tokens[i] if i < len(tokens) else None, float(top2[0] - top2[1]))
