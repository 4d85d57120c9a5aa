"""History adaptation: a per-iteration controller of D_0 and tau_high on recent acceptance.

The statistic of one iteration is its acceptance (the book's α, for one iteration)

    α_t = (accepted draft tokens on the committed path) / (depth of the drafted tree)  in [0, 1],

i.e. how much of the drafted depth the target kept (iterations that drafted nothing
are skipped; nodes grafted by context lookup are not the draft's and do not count).
Two controllers read it, chosen by ``DynaTree(controller=...)``:

``"paper"`` (the published rule): the mean a of α_t over the last W iterations, the
error e = a - alpha* against a fixed set point, and an incremental update

    D_0   <- clip(D_0 + k_D * e, 1, D_max)
    tau_h <- clip(tau_h - k_tau * e, tau_l + 0.01, 0.99).

The update integrates e, so D_0 only stops moving where the draft's acceptance equals
alpha*. A pair that never reaches alpha* (the embedded pair's α is 0.3-0.45 for any tree,
alpha* = 0.7) walks both knobs to a bound and keeps them there: a constant e < 0 drives
D_0 to 1 and tau_h to 0.99 within a few iterations, and the configured values stop
mattering.

``"relative"`` (the default): the set point is the pair's own acceptance, the mean of α_t
over every iteration of this generation so far, and the controller is proportional around
the configured operating point. With f an exponential moving average of α_t (span W) and
r = clip((f - mean) / max(mean, 0.05), -1, 1) the relative error,

    D_0(t)   = clip(D_0 + k_D * r, 1, D_max)
    tau_h(t) = clip(tau_h - k_tau * r, tau_l + 0.01, 0.99)

so a stretch of text the draft predicts better than usual gets deeper, narrower trees,
a harder stretch shallower, wider ones, and a constant acceptance of any level leaves
the configured D_0 and tau_h as they are (r = 0). |r| <= 1 bounds the excursion by k_D
levels and k_tau; alpha* is unused. D_0 is kept as a real number and rounded where the
tree is grown.
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
        self.fast: float | None = None      # relative: EMA of α_t
        self.total, self.count = 0.0, 0     # relative: the running mean's sum and count

    def update(self, accepted_depth: int, drafted_depth: int) -> None:
        """Record one iteration and move D_0 and tau_high (no-op when adaptation is off)."""
        c = self.config
        if not c.adapt or drafted_depth <= 0:
            return
        alpha = min(accepted_depth / drafted_depth, 1.0)
        self.history.append(alpha)
        if c.controller == "paper":
            error = sum(self.history) / len(self.history) - c.target_acceptance
            depth, tau = self.base_depth + c.depth_gain * error, self.tau_high - c.tau_gain * error
        else:
            rate = 2.0 / (c.history_window + 1)
            self.fast = alpha if self.fast is None else self.fast + rate * (alpha - self.fast)
            self.total, self.count = self.total + alpha, self.count + 1
            mean = self.total / self.count
            error = min(max((self.fast - mean) / max(mean, 0.05), -1.0), 1.0)
            depth, tau = c.base_depth + c.depth_gain * error, c.tau_high - c.tau_gain * error
        self.base_depth = min(max(depth, 1.0), float(c.max_depth))
        self.tau_high = min(max(tau, c.tau_low + 0.01), 0.99)

    @property
    def depth(self) -> int:
        """D_0 as used when growing the tree: rounded to the nearest integer (halves to even)."""
        return int(round(self.base_depth))


def bound_shares(base_depths: list[float], tau_highs: list[float], config: DynaTree) -> dict[str, float]:
    """Share of iterations whose tree was grown with a knob at a bound of its range.

    ``base_depths``/``tau_highs`` are the per-iteration values (``GenerationStats``); the
    bounds are D_0 in [1, D_max] and tau_high in [tau_l + 0.01, 0.99]; ``any``: at least one
    knob at a bound. A knob configured at a bound counts there too."""
    low_tau = config.tau_low + 0.01
    flags = {"depth_low": [d <= 1.0 for d in base_depths],
             "depth_high": [d >= config.max_depth for d in base_depths],
             "tau_low": [t <= low_tau + 1e-9 for t in tau_highs],
             "tau_high": [t >= 0.99 - 1e-9 for t in tau_highs]}
    flags["any"] = [any(row) for row in zip(*flags.values())]
    n = len(base_depths)
    return {name: sum(values) / n if n else 0.0 for name, values in flags.items()}
