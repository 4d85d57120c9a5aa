"""What ``generate`` returns: the new tokens, counters and timings, and optional per-iteration traces.

The metric names follow the book's notation table (chapter 0): tau is committed tokens per
target forward, acceptance counts the draft's own tokens, throughput includes the prefill.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field


@dataclass
class GenerationStats:
    """Counters and timings of one ``generate`` call (names as in the book's notation table).

    Per-iteration lists have one entry per draft/verify iteration (the prefill is not one).
    They count only tokens that reach the output: when EOS or ``max_new_tokens`` ends the
    generation inside an accepted path, the last iteration's counts stop there too.

    * ``committed``: tokens emitted (accepted candidates + the bonus token);
    * ``accepted``: candidate tokens accepted, from the draft or from context lookup;
    * ``accepted_drafted``: those the draft model proposed (what acceptance rates count);
    * ``accepted_lookup``: those context lookup proposed (a token both sources proposed
      counts in both);
    * ``drafted_depth``: depth of the draft's own tree (grafted lookup nodes excluded);
    * ``tree_sizes``: draft nodes per tree (root and lookup nodes excluded);
    * ``lookup_nodes``: nodes ``DynaTree(lookup=m)`` added beyond the draft's (0 otherwise);
    * ``base_depth``, ``theta_high``: DynaTree's D_0 and θ_high each tree was grown with;
      ``controller_bounds``: the share of iterations with either at a bound of its range
      (:func:`dynatree_lib.core.controller.bound_shares`);
    * ``threshold``, ``level_cost``: DynaTree's pruning threshold and one level's cost in
      target steps each tree was grown with (both constant unless ``measure_costs``);
      ``measured_costs``: the prices measured by the end of the generation (``measure_costs``).

    Times are seconds. The total waits for the device's queued work (``timing.now``); on CUDA
    the phases (prefill, draft, verify) are timed with CUDA events, so timing drains the GPU
    once per call, not once per phase, for AR and the speculative methods alike.
    """

    prompt_tokens: int = 0
    new_tokens: int = 0
    target_forwards: int = 0
    draft_forwards: int = 0
    committed: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    accepted_drafted: list[int] = field(default_factory=list)
    accepted_lookup: list[int] = field(default_factory=list)
    drafted_depth: list[int] = field(default_factory=list)
    tree_sizes: list[int] = field(default_factory=list)
    lookup_nodes: list[int] = field(default_factory=list)
    base_depth: list[float] = field(default_factory=list)
    theta_high: list[float] = field(default_factory=list)
    controller_bounds: dict[str, float] | None = None
    threshold: list[float] = field(default_factory=list)
    level_cost: list[float] = field(default_factory=list)
    measured_costs: dict[str, float] | None = None
    time_prefill: float = 0.0
    time_draft: float = 0.0
    time_verify: float = 0.0
    time_other: float = 0.0
    time_total: float = 0.0
    ttft: float = 0.0

    @property
    def iterations(self) -> int:
        return len(self.committed)

    @property
    def tau_high(self) -> list[float]:
        """Deprecated name of ``theta_high`` (τ is tokens per target forward)."""
        warnings.warn("GenerationStats.tau_high is deprecated: use .theta_high", DeprecationWarning,
                      stacklevel=2)
        return self.theta_high

    @property
    def tau(self) -> float:
        """Mean committed tokens per target forward, prefill and bonus tokens included (AR: 1)."""
        return self.new_tokens / self.target_forwards if self.target_forwards else 0.0

    @property
    def acceptance_rate(self) -> float:
        """alpha: accepted draft tokens / drafted depth (for a chain: / drafted tokens)."""
        drafted = sum(self.drafted_depth)
        return sum(self.accepted_drafted) / drafted if drafted else 0.0

    @property
    def tree_efficiency(self) -> float:
        """Accepted draft tokens / draft tree nodes."""
        nodes = sum(self.tree_sizes)
        return sum(self.accepted_drafted) / nodes if nodes else 0.0

    @property
    def accepted_per_depth(self) -> list[float]:
        """Entry d-1: fraction of iterations whose accepted draft path reached depth d."""
        if not self.accepted_drafted or not max(self.drafted_depth):
            return []
        n = len(self.accepted_drafted)
        return [sum(a >= d for a in self.accepted_drafted) / n
                for d in range(1, max(self.drafted_depth) + 1)]

    @property
    def throughput(self) -> float:
        """New tokens per second of the whole call, prefill included."""
        return self.new_tokens / self.time_total if self.time_total else 0.0

    @property
    def tpot(self) -> float:
        """Time per output token after the first: (total - TTFT) / (T - 1)."""
        return (self.time_total - self.ttft) / (self.new_tokens - 1) if self.new_tokens > 1 else 0.0

    def summary(self) -> dict[str, float]:
        """The headline metrics as a flat dict."""
        return {"new_tokens": self.new_tokens, "iterations": self.iterations,
                "target_forwards": self.target_forwards, "draft_forwards": self.draft_forwards,
                "tau": self.tau, "acceptance_rate": self.acceptance_rate,
                "tree_efficiency": self.tree_efficiency, "throughput": self.throughput,
                "ttft": self.ttft, "tpot": self.tpot, "time_total": self.time_total,
                "time_draft": self.time_draft, "time_verify": self.time_verify,
                "time_other": self.time_other, "time_prefill": self.time_prefill}


@dataclass
class IterationTrace:
    """One iteration, for visualisations. Node 0 is the root (parent -1); nodes from index
    ``drafted_nodes`` on were grafted by context lookup, not drafted."""

    prefix_len: int
    tokens: list[int]
    parents: list[int]
    depths: list[int]
    draft_prob: list[float]       # q(node | parent path); 1 for grafted nodes
    path_prob: list[float]        # p(node), cumulative
    target_next: list[int]        # target's greedy token after each node
    accepted_path: list[int]      # node indices, root first, up to the last emitted token
    committed: list[int]          # tokens emitted: accepted candidates + bonus
    drafted_nodes: int = 0        # nodes 0 .. drafted_nodes - 1 come from the draft (root included)


@dataclass
class GenerationResult:
    new_tokens: list[int]
    stats: GenerationStats
    trace: list[IterationTrace] | None = None
