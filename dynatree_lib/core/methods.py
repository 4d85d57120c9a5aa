"""Method configurations: what each decoding method drafts, with validated fields.

Every config is a small frozen dataclass whose defaults are the paper's. Invalid
values raise ``ValueError`` when the config is built, before any model runs.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass


def _check_int(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _check_unit(name: str, value: float, *, closed_low: bool = False,
                closed_high: bool = False) -> None:
    """Probabilities and thresholds live in (0, 1) (or [0, 1) where zero means 'off', (0, 1]
    where one means 'never')."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    above = 0.0 <= value if closed_low else 0.0 < value
    below = value <= 1.0 if closed_high else value < 1.0
    interval = f"{'[' if closed_low else '('}0, 1{']' if closed_high else ')'}"
    if not (above and below):
        raise ValueError(f"{name} must lie in {interval}, got {value}")


CONTROLLERS = ("goodput", "paper")


@dataclass(frozen=True)
class Autoregressive:
    """Plain greedy decoding: one target forward per new token. The draft is unused."""


@dataclass(frozen=True)
class Linear:
    """Linear speculation (Leviathan et al.): the draft proposes a chain of ``k`` tokens.

    Args:
        k: tokens drafted per iteration (gamma in Leviathan et al.).
    """

    k: int = 8

    def __post_init__(self) -> None:
        _check_int("k", self.k, 1)


@dataclass(frozen=True)
class FixedTree:
    """A fixed token tree: every expanded node gets the draft's top-``branch`` children.

    Args:
        depth: D, the tree depth (draft tokens on the longest path).
        branch: B, children per expanded node.
        threshold: epsilon, prune a node whose cumulative draft probability p(u) < epsilon.
        max_nodes: N_max, the strict budget of draft nodes per tree (root excluded).
    """

    depth: int = 8
    branch: int = 3
    threshold: float = 0.1
    max_nodes: int = 256

    def __post_init__(self) -> None:
        _check_int("depth", self.depth, 1)
        _check_int("branch", self.branch, 1)
        _check_unit("threshold", self.threshold)
        _check_int("max_nodes", self.max_nodes, 1)


@dataclass(frozen=True)
class DynaTree:
    """DynaTree: a confidence-aware adaptive token tree (training-free).

    For a node u with depth d(u), cumulative draft path probability p(u) and draft
    confidence c(u) = max_x q_D(x | u):

    * breadth: B(u) = B_min if c(u) >= theta_high, B_max if c(u) < theta_low, else B_mid;
    * depth gating: u is expanded only if d(u) < D_max and p(u) >= rho_stop and
      (d(u) < D_0 or p(u) > rho_deep);
    * pruning: a child v with p(v) < epsilon is dropped; at most N_max draft nodes;
    * history adaptation (``adapt=True``): after every iteration a controller moves D_0
      on what verification showed. ``controller="goodput"`` (default) estimates the
      target's per-level acceptance a and sets D_0 to the depth that maximises expected
      committed tokens per unit of cost, (1 + a + ... + a^D) / (1 + draft_cost * D);
      theta_high stays as configured. ``"paper"`` is the published rule, an integrating
      step of D_0 and theta_high towards the fixed set point alpha*, which sits at its
      bounds on a pair that never reaches alpha*
      (see :class:`dynatree_lib.core.controller.HistoryController`).

    Under sampling (``generate(..., do_sample=True)``) the rules are the same, read on the
    draft's distribution after the temperature/top-k/top-p warpers; what changes is that
    u's B(u) children are drawn from q without replacement instead of taken as its top-B,
    and a child removed by pruning or the budget stays a proposal that can still be
    accepted (ending the iteration), as recursive rejection sampling requires
    (:mod:`dynatree_lib.core.sampling`); looked-up tokens enter it as point-mass proposals.

    Args:
        base_depth: D_0, depth up to which nodes expand regardless of rho_deep.
        max_depth: D_max, hard depth limit.
        min_branch: B_min, children of a confident node.
        mid_branch: B_mid, children of a node of medium confidence.
        max_branch: B_max, children of an unconfident node.
        theta_high: θ_high, confidence at or above which B_min applies (formerly
            ``tau_high``, still accepted with a DeprecationWarning; τ is tokens per forward).
        theta_low: θ_low, confidence below which B_max applies (formerly ``tau_low``).
        rho_stop: rho_stop, nodes with p(u) < rho_stop are never expanded.
        rho_deep: rho_deep, beyond D_0 a node expands only if p(u) > rho_deep (1: never).
        threshold: epsilon, probability pruning threshold on p(u); 0 switches pruning off
            (priced or not).
        max_nodes: N_max, strict budget of draft nodes per tree (root excluded).
        adapt: enable history adaptation (False gives the ablation without it).
        controller: "goodput" (default) or "paper", the rule history adaptation follows.
        history_window: W, iterations the controller remembers (paper: a sliding window of
            α_t; goodput: counts discounted by 1 - 1/W per iteration).
        draft_cost: beta, one draft level's cost in target steps (goodput only; it depends on
            the drafter, dtype and device: chapter 5 measures it).
        target_acceptance: alpha*, the paper controller's set point (unused by "goodput").
        depth_gain: k_D, the paper controller's change of D_0 per unit of error.
        theta_gain: k_θ, the same for theta_high (with the opposite sign; paper only;
            formerly ``tau_gain``).
        lookup: m, extension (not in the paper): context lookup as a second source of
            candidates, up to m tokens copied from earlier context (prompt lookup) per tree,
            each entering with a confidence calibrated on this generation's acceptance of
            earlier lookups and judged by the same pruning rule, within the same N_max
            budget (the draft's nodes first) (:mod:`dynatree_lib.core.sources`); 0 = off.
        lookup_ngram: longest suffix n-gram matched by the lookup.
        measure_costs: price the goodput controller from this generation's own timings (a
            draft forward's cost and a verified position's, :mod:`dynatree_lib.core.pricing`)
            instead of ``draft_cost`` alone, and once measured prune at what a verified
            position costs instead of ``threshold``. Trees then depend on the machine's
            speed (the output does not).
    """

    base_depth: int = 5
    max_depth: int = 8
    min_branch: int = 1
    mid_branch: int = 2
    max_branch: int = 3
    theta_high: float = 0.9
    theta_low: float = 0.4
    rho_stop: float = 0.1
    rho_deep: float = 0.5
    threshold: float = 0.05
    max_nodes: int = 256
    adapt: bool = True
    controller: str = "goodput"
    history_window: int = 10
    draft_cost: float = 0.18
    target_acceptance: float = 0.7
    depth_gain: float = 2.0
    theta_gain: float = 0.1
    lookup: int = 0
    lookup_ngram: int = 3
    measure_costs: bool = False

    def __post_init__(self) -> None:
        for name in ("base_depth", "max_depth", "min_branch", "mid_branch", "max_branch",
                     "max_nodes", "history_window"):
            _check_int(name, getattr(self, name), 1)
        for name in ("theta_high", "theta_low", "rho_stop", "target_acceptance"):
            _check_unit(name, getattr(self, name))
        _check_unit("rho_deep", self.rho_deep, closed_high=True)   # 1: never beyond D_0
        _check_unit("threshold", self.threshold, closed_low=True)  # 0: no pruning
        if self.base_depth > self.max_depth:
            raise ValueError(f"base_depth ({self.base_depth}) must be <= max_depth ({self.max_depth})")
        if not self.min_branch <= self.mid_branch <= self.max_branch:
            raise ValueError(
                "branches must satisfy min_branch <= mid_branch <= max_branch, got "
                f"{self.min_branch}, {self.mid_branch}, {self.max_branch}")
        if self.theta_low >= self.theta_high:
            raise ValueError(f"theta_low ({self.theta_low}) must be < theta_high ({self.theta_high})")
        if self.rho_stop > self.rho_deep:
            raise ValueError(f"rho_stop ({self.rho_stop}) must be <= rho_deep ({self.rho_deep})")
        for name in ("depth_gain", "theta_gain", "draft_cost"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        _check_int("lookup", self.lookup, 0)
        _check_int("lookup_ngram", self.lookup_ngram, 1)
        for name in ("adapt", "measure_costs"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {CONTROLLERS}, got {self.controller!r}")


# Old keyword names of DynaTree: τ means tokens per target forward everywhere else, so the
# confidence thresholds became θ (theta_*). The old names still work, with a warning.
RENAMED = {"tau_high": "theta_high", "tau_low": "theta_low", "tau_gain": "theta_gain"}


def _accept_renamed(cls):
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        for old, new in RENAMED.items():
            if old in kwargs:   # the old name wins (dataclasses.replace passes both)
                warnings.warn(f"DynaTree({old}=...) is deprecated: use {new}=...",
                              DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
        init(self, *args, **kwargs)

    def alias(old: str, new: str) -> property:
        def get(self):
            warnings.warn(f"DynaTree.{old} is deprecated: use .{new}", DeprecationWarning,
                          stacklevel=2)
            return getattr(self, new)
        return property(get)

    cls.__init__ = __init__
    for old, new in RENAMED.items():
        setattr(cls, old, alias(old, new))
    return cls


DynaTree = _accept_renamed(DynaTree)

Method = Autoregressive | Linear | FixedTree | DynaTree


def default_method() -> DynaTree:
    """What ``generate`` decodes with when no method is given: DynaTree with context lookup as a
    second source of candidates (m = 10) and a controller priced from the run's own timings,
    faster than the paper's ``DynaTree()`` on the embedded pair's chat and raw text
    (results/README.md, "one tree, two sources")."""
    return DynaTree(lookup=10, measure_costs=True)

