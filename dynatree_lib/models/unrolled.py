"""The feature head unrolled over tree levels, teacher-forced: what training optimises and
what agreement by depth measures.

A depth-l node's head state reads the head's own prediction l steps back, not the target's.
Unrolling all levels over a sequence at once (one forward per level under a mask that shows
each level its own chain) computes exactly those states for every position.
"""

from __future__ import annotations

import torch

from ..core.tree import additive_mask
from .feature_head import FeatureHead


def unrolled_mask(n: int, levels: int, device) -> torch.Tensor:
    """[levels * n, levels * n] bool: token (l, j) (level l, position j + 1) sees level-0 tokens up
    to position j - l and the chain (k, j - l + k) for k = 1 .. l, as a depth-l tree node sees
    the committed prefix and its ancestors."""
    allowed = torch.zeros(levels * n, levels * n, dtype=torch.bool, device=device)
    j = torch.arange(n, device=device)
    for level in range(levels):
        rows = level * n + j
        allowed[rows.unsqueeze(1), j.unsqueeze(0)] = j.unsqueeze(0) <= (j - level).unsqueeze(1)
        for k in range(1, level + 1):
            cols = k * n + (j - level + k)
            valid = (j - level + k) >= 0
            allowed[rows[valid], cols[valid]] = True
    allowed |= torch.eye(levels * n, dtype=torch.bool, device=device)  # invalid tokens see themselves
    return allowed


def unrolled_states(head: FeatureHead, tokens: torch.Tensor, states: torch.Tensor, levels: int,
                    grad: bool = True) -> torch.Tensor:
    """[B, levels, n, H] predicted states for positions 1 .. L - 1 at every level.

    ``tokens`` [B, L], ``states`` [B, L, H] the target's. Level 0 reads ``states``; level l reads
    level l-1's prediction one position back (detached: the run-time input, not a path for
    gradients). Deeper levels need their earlier predictions, so level l runs with all levels
    below it; only the last pass keeps gradients.
    """
    batch, length, hidden = states.shape
    n = length - 1
    positions = torch.arange(1, length, device=tokens.device).expand(batch, n)
    inputs = [states[:, :-1].to(head.norm.weight.dtype)]
    out = None
    for level in range(levels):
        mask = additive_mask(unrolled_mask(n, level + 1, tokens.device), head.norm.weight.dtype)
        last = level == levels - 1
        with torch.set_grad_enabled(grad and last):
            out = head(torch.cat(inputs, dim=1), tokens[:, 1:].repeat(1, level + 1),
                       positions.repeat(1, level + 1), mask)
        if not last:
            shifted = torch.zeros_like(out[:, level * n:])
            shifted[:, 1:] = out[:, level * n:-1].detach()   # level l at position j reads level l-1 at j-1
            inputs.append(shifted)
    return out.view(batch, levels, n, hidden)
