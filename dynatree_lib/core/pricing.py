"""What a draft level and a verified position cost, measured from the run's own timings.

The goodput controller (``controller.py``) picks the depth that commits the most tokens per
unit of cost, and the pruning threshold decides which candidates are worth verifying. Both
need prices: a draft forward's cost beta and a verified position's cost kappa, in units of
one target step t(1). They depend on the drafter (the feature head costs a third of the
draft model), the dtype (float32 verification on a CPU grows with every position; bfloat16
much less) and the device (a GPU verifies tens of positions for the price of one), so a
constant is right on one machine only. ``DynaTree(measure_costs=True)`` measures them
instead, per generation, from the laps the decoding loop already takes:

* verification: t(n) = t0 + t1 * n over the iterations' (positions n, seconds), a least-squares
  line with older iterations discounted; t(1) = t0 + t1 is the unit, kappa = t1 / t(1);
* drafting: the seconds per draft forward, discounted the same way; beta = that / t(1).

Until a few iterations with different tree sizes have been seen, the configured draft_cost
and kappa = 0 stand in. The prices change which tree is grown, never which tokens are
committed: the output stays the target's own.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_ITERATIONS = 3   # observations before the measured prices replace the configured ones
THRESHOLD_FLOOR = 0.02   # a priced pruning threshold never goes below: at most 50 nodes a level


@dataclass
class CostMeter:
    """Discounted sums over iterations (weight 1 - 1/window per iteration)."""

    window: int = 30
    weight: float = 0.0      # sum of weights
    n: float = 0.0           # weighted sums of positions, positions^2, seconds, positions * seconds
    nn: float = 0.0
    t: float = 0.0
    nt: float = 0.0
    draft_seconds: float = 0.0
    draft_forwards: float = 0.0
    seen: int = 0

    def observe(self, positions: int, verify_seconds: float, draft_forwards: int,
                draft_seconds: float) -> None:
        """One iteration: a verification over ``positions`` tokens and its draft forwards."""
        keep = 1.0 - 1.0 / self.window
        self.weight = keep * self.weight + 1.0
        self.n = keep * self.n + positions
        self.nn = keep * self.nn + positions * positions
        self.t = keep * self.t + verify_seconds
        self.nt = keep * self.nt + positions * verify_seconds
        self.draft_seconds = keep * self.draft_seconds + draft_seconds
        self.draft_forwards = keep * self.draft_forwards + draft_forwards
        self.seen += 1

    def verify_line(self) -> tuple[float, float] | None:
        """(t0, t1) of t(n) = t0 + t1 n, or None while n has not varied (the slope is unknown)."""
        if self.seen < MIN_ITERATIONS:
            return None
        mean_n, mean_t = self.n / self.weight, self.t / self.weight
        spread = self.nn / self.weight - mean_n * mean_n
        if spread < 0.25:   # tree sizes have barely varied: no slope to read
            return None
        slope = max(0.0, (self.nt / self.weight - mean_n * mean_t) / spread)
        return mean_t - slope * mean_n, slope

    def prices(self) -> tuple[float, float] | None:
        """(beta, kappa): a draft forward's and a verified position's cost in target steps t(1);
        None until measured."""
        line = self.verify_line()
        if line is None or self.draft_forwards <= 0:
            return None
        t0, t1 = line
        step = t0 + t1
        if step <= 0:
            return None
        return self.draft_seconds / self.draft_forwards / step, t1 / step
