"""History adaptation: a per-iteration controller of DynaTree's base depth D_0 (and theta_high).

Two controllers, chosen by ``DynaTree(controller=...)``, read what each iteration's
verification showed.

``"paper"`` (the published rule). The statistic is the iteration's acceptance

    α_t = (accepted draft tokens on the committed path) / (depth of the drafted tree),

its mean a over the last W iterations, the error e = a - alpha* against a fixed set
point, and an incremental update

    D_0   <- clip(D_0 + k_D * e, 1, D_max)
    tau_h <- clip(tau_h - k_tau * e, tau_l + 0.01, 0.99).

The update integrates e, so D_0 only stops moving where the pair's acceptance equals
alpha*. A pair that never reaches alpha* (the embedded pair's α is 0.3-0.55 for any
tree; alpha* = 0.7) walks both knobs to a bound and keeps them there: D_0 = 1 and
tau_h = 0.99, whatever the reader configured.

``"goodput"`` (the default). No set point: the controller estimates how likely the
target is to accept one more level of the tree, and picks the depth that pays. Level
d + 1 of an iteration is *attempted* when levels 1..d were accepted and the tree
reaches d + 1; an iteration that accepted A of its drafted depth D attempted
A + [A < D] levels and passed A of them (a tree accepted to its full depth says nothing
about the level below it). Discounted counts (weight 1 - 1/W per iteration, one
pseudo-level at a = 1/2 to start) give the per-level acceptance a. Under the
geometric model P(accept level d | levels < d accepted) = a, an iteration whose tree
is D_0 levels deep commits 1 + a + ... + a^D_0 tokens on average (the bonus token
included) and costs one verification (about one target step for the small trees
DynaTree grows: chapter 1's cost curve) plus D_0 draft forwards of beta target steps
each, so

    D_0 = argmax_{1 <= D <= D_max}  (1 + a + ... + a^D) / (1 + beta * D).

The optimum moves with a (with beta = 0.18, for instance: D_0 = 1
below a = 0.48, 2 up to 0.65, 3 up to 0.75, 4 up to 0.82, ...): easy stretches get
deeper trees, hard ones shallower. The depth is chosen, not integrated, so nothing
winds up against a bound: D_0 = 1 is where a poor draft's optimum lies, not where an
unreachable set point pushed it. theta_high stays where the reader put it: breadth is
the configured rule's (the paper's controller overrides it). Beyond D_0 the depth
rule still lets a path grow while p(u) > rho_deep.

Priced (``DynaTree(measure_costs=True)``, the library's default method): beta and the cost
kappa of one verified position come from this generation's own timings (``pricing.py``). A
level of w nodes (w: the recent trees' nodes per level) then costs beta + kappa * w, which
replaces beta above, and a candidate is worth verifying only if the chance it is accepted
exceeds kappa * g, g the expected tokens per unit of cost at the chosen depth (adding a node
of acceptance probability p raises tokens per cost iff p > kappa * g): once the prices are
measured, the pruning threshold epsilon is replaced by kappa * g (never below
``pricing.THRESHOLD_FLOOR``, which bounds a level's width). Until then epsilon stands;
epsilon = 0 (pruning off) stays 0.
"""

from __future__ import annotations

from collections import deque

from .methods import DynaTree
from .pricing import THRESHOLD_FLOOR, CostMeter

PRIOR_LEVELS = 1.0   # goodput: one pseudo-level attempted ...
PRIOR_RATE = 0.5     # ... and accepted with probability 1/2, so one iteration cannot set D_0 alone


class LevelCounts:
    """Discounted counts of levels passed and attempted, from one pseudo-level at 1/2: the
    per-level acceptance a of the goodput controller, and of context lookup (``sources.py``)."""

    def __init__(self, window: int) -> None:
        self.keep = 1.0 - 1.0 / window
        self.passed, self.attempted = PRIOR_RATE * PRIOR_LEVELS, PRIOR_LEVELS

    @property
    def rate(self) -> float:
        return self.passed / self.attempted

    def add(self, accepted: int, length: int) -> None:
        """A path of ``length`` levels whose first ``accepted`` were accepted: it passed that many
        and attempted one more unless it was accepted whole."""
        self.passed = self.keep * self.passed + accepted
        self.attempted = self.keep * self.attempted + accepted + (accepted < length)


def best_depth(rate: float, draft_cost: float, max_depth: int) -> int:
    """argmax over D in [1, max_depth] of (1 + a + ... + a^D) / (1 + beta * D), a = ``rate``.

    The expected tokens one iteration commits with a tree D levels deep, per unit of its
    cost (one verification + D draft levels of ``draft_cost`` target steps). Ties go to
    the shallower tree."""
    return _best(rate, draft_cost, max_depth)[0]


def _best(rate: float, level_cost: float, max_depth: int) -> tuple[int, float]:
    """:func:`best_depth` and the tokens per unit of cost it reaches."""
    best, best_value, tokens, term = 1, -1.0, 1.0, 1.0
    for depth in range(1, max_depth + 1):
        term *= rate
        tokens += term
        value = tokens / (1.0 + level_cost * depth)
        if value > best_value + 1e-12:
            best, best_value = depth, value
    return best, best_value


class HistoryController:
    """Holds the adapted D_0 and theta_high of one generation (or of several, if reused)."""

    def __init__(self, config: DynaTree) -> None:
        self.config = config
        self.base_depth = float(config.base_depth)
        self.theta_high = float(config.theta_high)
        self.history: deque[float] = deque(maxlen=config.history_window)    # paper: α_t
        self.levels = LevelCounts(config.history_window)   # goodput
        # priced goodput: measured costs, the trees' nodes per level, the pruning threshold
        self.meter = CostMeter() if config.measure_costs and config.controller == "goodput" else None
        self.draft_cost, self.node_cost, self.width = float(config.draft_cost), 0.0, 1.0
        self._widths = 0
        self.threshold = float(config.threshold)
        self.bar = 0.0   # priced: kappa * g, the acceptance chance a verified position must buy

    @property
    def level_acceptance(self) -> float:
        """goodput: the estimated per-level acceptance a (1/2 before any iteration)."""
        return self.levels.rate

    def observe_costs(self, positions: int, verify_seconds: float, draft_forwards: int,
                      draft_seconds: float, nodes: int, depth: int) -> None:
        """Priced only: one iteration's timings and its tree's shape (draft nodes, depth)."""
        if self.meter is None:
            return
        self.meter.observe(positions, verify_seconds, draft_forwards, draft_seconds)
        if depth > 0:   # a discounted mean from the first tree on
            self._widths += 1
            share = max(1.0 / self.config.history_window, 1.0 / self._widths)
            self.width += share * (nodes / depth - self.width)
        prices = self.meter.prices()
        if prices is not None:
            self.draft_cost, self.node_cost = prices

    @property
    def level_cost(self) -> float:
        """One more level's cost in target steps: its draft forward and its w verified nodes."""
        return self.draft_cost + self.node_cost * self.width

    def update(self, accepted_depth: int, drafted_depth: int) -> None:
        """Record one iteration and move D_0 (and, for "paper", theta_high); no-op when adaptation is off."""
        c = self.config
        if not c.adapt or drafted_depth <= 0:
            return
        accepted = min(accepted_depth, drafted_depth)
        if c.controller == "paper":
            self.history.append(accepted / drafted_depth)
            error = sum(self.history) / len(self.history) - c.target_acceptance
            self.base_depth = min(max(self.base_depth + c.depth_gain * error, 1.0), float(c.max_depth))
            self.theta_high = min(max(self.theta_high - c.theta_gain * error, c.theta_low + 0.01), 0.99)
            return
        self.levels.add(accepted, drafted_depth)
        depth, goodput = _best(self.level_acceptance, self.level_cost, c.max_depth)
        self.base_depth = float(depth)
        self.bar = min(self.node_cost * goodput, 0.99)
        # priced: the bar decides, unless pruning is switched off (threshold 0)
        if self.meter is not None and self.meter.prices() is not None and c.threshold > 0:
            self.threshold = max(self.bar, THRESHOLD_FLOOR)

    @property
    def depth(self) -> int:
        """D_0 as used when growing the tree: rounded to the nearest integer (halves to even)."""
        return int(round(self.base_depth))


def bound_shares(base_depths: list[float], theta_highs: list[float], config: DynaTree) -> dict[str, float]:
    """Share of iterations whose tree was grown with a knob at a bound of its range.

    ``base_depths``/``theta_highs`` are the per-iteration values (``GenerationStats``); the
    bounds are D_0 in [1, D_max] and theta_high in [theta_low + 0.01, 0.99]; ``any``: at least one
    knob at a bound. A knob configured at a bound counts there too."""
    low_theta = config.theta_low + 0.01
    flags = {"depth_low": [d <= 1.0 for d in base_depths],
             "depth_high": [d >= config.max_depth for d in base_depths],
             "theta_low": [t <= low_theta + 1e-9 for t in theta_highs],
             "theta_high": [t >= 0.99 - 1e-9 for t in theta_highs]}
    flags["any"] = [any(row) for row in zip(*flags.values(), strict=True)]
    n = len(base_depths)
    return {name: sum(values) / n if n else 0.0 for name, values in flags.items()}
