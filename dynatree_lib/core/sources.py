"""Candidates from more than one source in one tree: context lookup with a calibrated confidence.

The drafter (draft model or feature head) proposes tokens with probabilities, and DynaTree's
rules read them. Context lookup (``lookup.py``) proposes a chain copied from earlier text,
with no probability at all. To let one set of rules decide for both sources, the lookup's
chain gets one: the chance that the target accepts a looked-up token, estimated online from
this generation's own history, separately for each length n of the matched suffix (a
3-token match predicts better than a 1-token one). Under the geometric model the k-th token
of a chain matched on n tokens has path probability p = c_n^k, and it enters the tree when
DynaTree's pruning rule would keep a drafted node with that path probability (p >= epsilon),
while the tree stays within the one node budget N_max shared with the drafter's nodes.

The estimate counts as the goodput controller does (``controller.py``): a chain whose first A
tokens were accepted passed A levels and attempted A + [A < its length]; counts are
discounted by 1 - 1/W per use and start from one pseudo-level accepted with probability 1/2.
So a source that stops agreeing with the target shrinks to a token or two per tree (each
costs one verified position) and grows back when it agrees again.

Under sampling a looked-up token is a point-mass proposal: recursive rejection sampling
accepts it with the target's probability of that token and removes it from the residual
(``sampling.sample_walk``), so the committed tokens keep the target's distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .controller import LevelCounts
from .lookup import find_match


@dataclass
class Chain:
    """One lookup proposal: ``tokens`` in order, the length of the suffix it matched and the
    calibrated per-token confidence c_match it entered with (``tokens`` is already cut to the
    rules: c^k >= epsilon for its k-th token, within the budget)."""

    tokens: list[int]
    match: int = 0
    confidence: float = 0.0


@dataclass
class LookupSource:
    """Context lookup as a source of candidates, calibrated per generation (one per ``generate``).

    ``max_tokens``: the longest chain (L); ``max_ngram``: the longest suffix matched;
    ``window``: W, the discount horizon of the acceptance counts."""

    max_tokens: int
    max_ngram: int = 3
    window: int = 10
    counts: dict[int, LevelCounts] = field(default_factory=dict)   # by match length

    def confidence(self, match: int) -> float:
        """c_n: the estimated chance that the target accepts the next looked-up token of a chain
        matched on ``match`` tokens, given the chain's earlier tokens were accepted."""
        return self.counts.setdefault(match, LevelCounts(self.window)).rate

    def propose(self, context: list[int], threshold: float, room: int) -> Chain:
        """The chain for the text ``context`` (host ids), cut where c^k < ``threshold`` (epsilon)
        or after ``room`` tokens (what the depth cap and node budget leave); may be empty."""
        tokens, match = find_match(context, min(self.max_tokens, room), self.max_ngram)
        if not tokens:
            return Chain([])
        c = self.confidence(match)
        keep = len(tokens) if c >= 1 else _longest_above(c, threshold, len(tokens))
        return Chain(tokens[:keep], match, c)

    def update(self, chain: Chain, accepted: int) -> None:
        """Record that the first ``accepted`` tokens of ``chain`` reached the output."""
        if not chain.tokens:
            return
        counts = self.counts.setdefault(chain.match, LevelCounts(self.window))
        counts.add(min(accepted, len(chain.tokens)), len(chain.tokens))


def _longest_above(c: float, threshold: float, most: int) -> int:
    """The largest k <= ``most`` with c^k >= ``threshold`` (0 when even c < threshold)."""
    if c <= 0 or c < threshold:
        return 0
    if threshold <= 0:
        return most
    return min(most, int(math.floor(math.log(threshold) / math.log(c) + 1e-9)))


def accepted_on_chain(path_tokens: list[int], chain: Chain) -> int:
    """How many leading tokens of ``chain`` the accepted path's tokens (root excluded) match."""
    count = 0
    for token, proposed in zip(path_tokens, chain.tokens, strict=False):
        if token != proposed:
            break
        count += 1
    return count
