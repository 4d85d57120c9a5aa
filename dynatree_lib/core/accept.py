"""Acceptance: which of a verified tree's candidates are committed. Two strategies, one call.

Greedy: the longest root path whose every token is the target's argmax after its parent,
then the target's token after the last accepted node (the bonus). Sampling: recursive
rejection sampling down the tree (:mod:`dynatree_lib.core.sampling`). Both return an
:class:`Accepted`, so the decoding loop does not care which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .growth import DraftedTree
from .sampling import Sampler, sample_walk
from .verify import Verification


@dataclass(frozen=True)
class Accepted:
    """One iteration's outcome: ``path`` the m + 1 accepted tree nodes, root first; ``tokens``
    the committed tokens (accepted candidates, then the target's own); ``drafted`` how many
    of ``tokens`` are accepted candidates (a sampled stub beyond the path included)."""

    path: list[int]
    tokens: list[int]
    drafted: int


class GreedyAcceptance:
    """Accept the target's greedy choices: the output is the target's own greedy decoding."""

    wants_scores = False

    def __call__(self, drafted: DraftedTree, verified: Verification) -> Accepted:
        tree, next_tokens = drafted.tree, verified.next_tokens
        deepest = tree.deepest_accepted(next_tokens)
        node, bonus = torch.stack([deepest, next_tokens[deepest]]).tolist()   # the one read
        path = tree.path_to(node)
        known = tree.read()   # the host copy of the compacted tree: no read
        return Accepted(path, [known.tokens[i] for i in path[1:]] + [bonus], len(path) - 1)


class SampledAcceptance:
    """Recursive rejection sampling: every committed token has the target's distribution."""

    wants_scores = True

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def __call__(self, drafted: DraftedTree, verified: Verification) -> Accepted:
        walk = sample_walk(drafted.tree, drafted.proposals, verified.scores, self.sampler, drafted.points)
        return Accepted(walk.path, walk.tokens, walk.drafted)


def acceptance(sampler: Sampler | None) -> GreedyAcceptance | SampledAcceptance:
    """The strategy of a ``generate`` call: greedy without a sampler."""
    return GreedyAcceptance() if sampler is None else SampledAcceptance(sampler)
