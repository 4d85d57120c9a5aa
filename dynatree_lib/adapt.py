"""History adaptation: a per-iteration proportional controller on recent acceptance.

The statistic of one iteration is its acceptance (the book's α, for one iteration)

    α_t = (accepted draft tokens on the committed path) / (depth of the drafted tree)  in [0, 1],

i.e. how much of the drafted depth the target kept (iterations that drafted nothing
are skipped; nodes grafted by context lookup are not the draft's and do not count). The
controller averages α_t over the last W iterations and, with
error e = mean(a) - alpha*, updates after every iteration

    D_0   <- clip(D_0 + k_D * e, 1, D_max)
    tau_h <- clip(tau_h - k_tau * e, tau_l + 0.01, 0.99)

so a draft that keeps being accepted gets deeper trees and, since more nodes count
as confident, narrower ones; a draft that keeps failing gets shallower, wider
trees. D_0 is kept as a real number and rounded where the tree is grown.
With alpha* = 0.7 the error lies in [-0.7, 0.3], so the defaults k_D = 2 and k_tau = 0.1
move D_0 by at most 1.4 levels per iteration and tau_h by at most 0.07.
"""

from __future__ import annotations

from collections import deque

from .methods import DynaTree


class HistoryController:
    """Holds the adapted D_0 and tau_high of one generation (or of several, if reused)."""

    def __init__(self, config: DynaTree) -> None:
        self.config = config
        self.base_depth = float(config.base_depth)
        self.tau_high = float(config.tau_high)
        self.history: deque[float] = deque(maxlen=config.history_window)

    def update(self, accepted_depth: int, drafted_depth: int) -> None:
        """Record one iteration and move D_0 and tau_high (no-op when adaptation is off)."""
        if not self.config.adapt or drafted_depth <= 0:
            return
        self.history.append(min(accepted_depth / drafted_depth, 1.0))
        error = sum(self.history) / len(self.history) - self.config.target_acceptance
        c = self.config
        self.base_depth = min(max(self.base_depth + c.depth_gain * error, 1.0), float(c.max_depth))
        self.tau_high = min(max(self.tau_high - c.tau_gain * error, c.tau_low + 0.01), 0.99)

    @property
    def depth(self) -> int:
        """D_0 as used when growing the tree: rounded to the nearest integer (halves to even)."""
        return int(round(self.base_depth))
