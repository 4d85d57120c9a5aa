"""Growing the candidate tree with the draft model, one level per draft forward, and the
table of methods.

All methods share one growth procedure; they differ only in their
:class:`GrowthRule`: how many children a node gets (breadth), which nodes are
expanded (depth gating), the pruning threshold and the node budget. :data:`METHODS`
registers each method's config class with the function that makes its rule: a new
method is a config dataclass plus one ``@register_method`` function.

The draft is reached through the small interface of :mod:`dynatree_lib.core.drafter`:
``begin`` gives the root's children, each ``expand`` one level of the tree (the whole
frontier in one forward, batched under a tree mask at positions ``prefix_len + depth``;
siblings never see each other). The causal-LM draft and the feature head both fit it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .controller import HistoryController
from .methods import Autoregressive, DynaTree, FixedTree, Linear
from .sampling import Proposals, Sampler
from .tree import TokenTree


@dataclass(frozen=True)
class GrowthRule:
    """How one tree grows. ``breadth`` maps draft confidences [F] to child counts [F];
    ``expands(depth, logp)`` says which of the [F] nodes at that depth get children."""

    max_depth: int
    max_nodes: int
    max_branch: int
    threshold: float
    breadth: Callable[[Tensor], Tensor]
    expands: Callable[[int, Tensor], Tensor]
    lookup: int = 0  # longest context-lookup chain (sources.py), within max_nodes
    first_levels: int | None = None   # levels planned before any tree was seen (default max_depth)
    widest: Callable[[int], int] | None = None   # most nodes at a depth the rule can expand

    def __post_init__(self) -> None:
        if self.first_levels is None:
            object.__setattr__(self, "first_levels", self.max_depth)

    def frontier_cap(self, depth: int) -> int:
        """The most nodes at ``depth`` that this rule can expand: the rows of that level's draft
        forward (fixed shapes lose nothing)."""
        widest = self.max_nodes if self.widest is None else self.widest(depth)
        return max(1, min(widest, self.max_nodes))

    @property
    def capacity(self) -> int:
        """Most tokens one verification appends to a cache: the root and every candidate node
        (drafted and looked-up nodes share the budget)."""
        return self.max_nodes + 1


UNCAPPED = 2**31  # a depth cap that caps nothing
RuleMaker = Callable[[Any, "HistoryController | None", int], GrowthRule]


@dataclass(frozen=True)
class MethodEntry:
    """One decoding method: its name (CLI, result files), its config class and how its trees
    grow (``rule(config, controller, depth_cap)``; None for a method that drafts nothing)."""

    name: str
    config: type
    rule: RuleMaker | None = None
    adapts: bool = False   # keeps a HistoryController across iterations

    @property
    def drafts(self) -> bool:
        return self.rule is not None

    def controller(self, method) -> HistoryController | None:
        """A fresh controller for ``method``, or None if this method does not adapt."""
        return HistoryController(method) if self.adapts else None

    def capacity(self, method) -> int:
        """Most tokens any iteration's verification appends (1: the root alone, for AR)."""
        if self.rule is None:
            return 1
        return self.rule(method, self.controller(method), UNCAPPED).capacity


METHODS: dict[str, MethodEntry] = {}
"""The table of methods, by name: the decoding loop, the CLI, the harness and the book read it."""


def register_method(name: str, config: type, adapts: bool = False):
    """Register ``config`` under ``name``: decorates the function that makes its growth rule."""
    def add(rule: RuleMaker) -> RuleMaker:
        METHODS[name] = MethodEntry(name, config, rule, adapts)
        return rule
    return add


def method_entry(method) -> MethodEntry:
    """The table entry of a config object (``Linear(k=4)`` -> the "linear" entry)."""
    for entry in METHODS.values():
        if type(method) is entry.config:
            return entry
    names = ", ".join(entry.config.__name__ for entry in METHODS.values())
    raise TypeError(f"method must be one of {names}, got {method!r}")


def growth_rule(method, controller: HistoryController | None, depth_cap: int) -> GrowthRule:
    """The rule of one iteration; ``depth_cap`` limits depth to the tokens still wanted."""
    entry = method_entry(method)
    if entry.rule is None:
        raise TypeError(f"no growth rule for {type(method).__name__}")
    return entry.rule(method, controller, depth_cap)


METHODS["ar"] = MethodEntry("ar", Autoregressive)   # drafts nothing: no growth rule


@register_method("linear", Linear)
def linear_rule(method: Linear, controller: None, depth_cap: int) -> GrowthRule:
    """A chain: one child per node, k levels."""
    depth = min(method.k, depth_cap)
    return GrowthRule(depth, method.k, 1, 0.0, _constant(1), _shallower_than(depth), widest=lambda d: 1)


@register_method("fixed", FixedTree)
def fixed_tree_rule(method: FixedTree, controller: None, depth_cap: int) -> GrowthRule:
    """B children per node to depth D, pruned at epsilon, at most N_max nodes."""
    depth = min(method.depth, depth_cap)
    return GrowthRule(depth, method.max_nodes, method.branch, method.threshold,
                      _constant(method.branch), _shallower_than(depth),
                      widest=lambda d: _at_least(method.threshold))


@register_method("dynatree", DynaTree, adapts=True)
def dynatree_rule(method: DynaTree, controller: HistoryController, depth_cap: int) -> GrowthRule:
    """Breadth from the draft's confidence, depth from p(u) and the controller's D_0."""
    max_depth = min(method.max_depth, depth_cap)
    base_depth = min(controller.depth, max_depth)
    theta_high, theta_low = controller.theta_high, method.theta_low
    threshold = controller.threshold   # epsilon, or what a verified position costs if priced
    log_stop, log_deep = math.log(method.rho_stop), math.log(method.rho_deep)

    def breadth(confidence: Tensor) -> Tensor:   # torch.where: a masked assignment would read
        width = torch.full_like(confidence, method.mid_branch, dtype=torch.long)
        width = torch.where(confidence >= theta_high, method.min_branch, width)
        return torch.where(confidence < theta_low, method.max_branch, width)

    def expands(depth: int, logp: Tensor) -> Tensor:
        if depth >= max_depth:
            return torch.zeros_like(logp, dtype=torch.bool)
        gate = logp >= log_stop
        return gate if depth < base_depth else gate & (logp > log_deep)

    def widest(depth: int) -> int:   # path probabilities at one depth sum to at most 1
        floor = max(method.rho_stop, threshold)
        return _at_least(floor) if depth < base_depth else min(_at_least(floor), _above(method.rho_deep))

    return GrowthRule(max_depth, method.max_nodes, method.max_branch, threshold,
                      breadth, expands, min(method.lookup, depth_cap), first_levels=base_depth,
                      widest=widest)


def _at_least(p: float) -> int:
    """The most nodes of one depth whose path probability can be >= p (no bound for p = 0);
    the margin covers float rounding of probabilities that sum to 1."""
    return 2**31 if p <= 0 else math.floor(1.0 / p * (1 + 1e-4))


def _above(p: float) -> int:
    """The most nodes of one depth whose path probability can be > p."""
    return 2**31 if p <= 0 else max(1, math.ceil(1.0 / p * (1 - 1e-4)) - 1)


def _constant(width: int) -> Callable[[Tensor], Tensor]:
    return lambda confidence: torch.full_like(confidence, width, dtype=torch.long)


def _shallower_than(max_depth: int) -> Callable[[int, Tensor], Tensor]:
    return lambda depth, logp: torch.full_like(logp, depth < max_depth, dtype=torch.bool)


@dataclass
class DraftedTree:
    """A grown tree (compacted: only its real nodes, and a host copy of them), the number of
    draft forwards it took and, when sampling, the children drawn at every expanded node
    (:class:`dynatree_lib.core.sampling.Proposals`)."""

    tree: TokenTree
    forwards: int
    proposals: dict[int, Proposals] = field(default_factory=dict)
    nodes: int = 1   # the draft's own nodes, root included (nodes grafted later come after them)
    depth: int = 0   # the draft's own tree depth
    growing: bool = False   # some node at the last level grown would have been expanded
    planned: int = 0        # the levels planned before growing (one more may have been grown)
    points: dict[int, int] = field(default_factory=dict)   # node -> a looked-up child's token


def level_shapes(rule: GrowthRule, levels: int) -> list[int]:
    """Frontier sizes [F_0 = 1, F_1, ..., F_{levels-1}]: the rows of each level's draft forward.

    Level d holds F_{d-1} * B_max candidate slots; F_d is the most nodes the rule can expand at
    depth d (:meth:`GrowthRule.frontier_cap`), so fixed shapes lose no node the rule expands."""
    sizes = [1]
    for depth in range(1, levels):
        sizes.append(min(sizes[-1] * rule.max_branch, rule.frontier_cap(depth)))
    return sizes


def next_levels(drafted: DraftedTree) -> int:
    """How many levels the next tree plans (decided on the host, before it grows): one more
    than this one planned if it was still growing at its end (even after the extra level),
    its depth if it stopped short of the plan (at least 1), else the same plan (a tree that
    needed one level more got it from the one read during growth)."""
    if drafted.growing:
        return drafted.planned + 1
    return max(drafted.depth, 1) if drafted.depth < drafted.planned else drafted.planned


def draft_tree(drafter, sequence: Tensor, prefix_len: int, rule: GrowthRule, vocab_size: int,
               sampler: Sampler | None = None, levels: int | None = None) -> DraftedTree:
    """Grow one tree whose root is ``sequence[-1]`` (the last committed token) at ``prefix_len``.

    Every level has a shape known before it is grown (:func:`level_shapes`): its candidates
    are slots of the tree, masked out (log p = -inf) where the rule rejects them, and the
    next frontier is the most probable expandable slots, padded with closed ones. So growing
    waits for the device at most once (whether to grow one level beyond the planned ones);
    the grown tree is read once, at the end, and compacted to its real nodes (what the
    target verifies).

    Args:
        drafter: a :class:`dynatree_lib.core.drafter.Drafter` (a causal-LM draft or the feature head).
        sequence: [L] every committed token, root last.
        rule: the iteration's growth rule.
        vocab_size: draft logits beyond it are ignored (padded embedding matrices).
        sampler: greedy trees take each node's top-B(u) tokens; with a sampler the B(u)
            children are drawn without replacement from the draft's warped distribution
            (:mod:`dynatree_lib.core.sampling`), and pruned draws are kept as proposals.
        levels: how many levels to plan (at most ``rule.max_depth``; default
            ``rule.first_levels``): decided on the host, from the last tree (:func:`next_levels`);
            a tree still growing at the last planned level gets one more.
    """
    levels = planned = min(rule.max_depth, rule.first_levels if levels is None else levels)
    room = min(levels + 1, rule.max_depth)       # one level more, if the planned ones end growing
    sizes = level_shapes(rule, room)
    slots = TokenTree(sequence[-1], 1 + rule.max_branch * sum(sizes), sequence.device)
    frontier = torch.zeros(1, dtype=torch.long, device=sequence.device)
    open_rows = torch.ones(1, dtype=torch.bool, device=sequence.device)
    used = torch.zeros((), dtype=torch.long, device=sequence.device)   # draft nodes kept so far
    growing = torch.zeros((), dtype=torch.bool, device=sequence.device)
    drawn: list[tuple[Tensor, ...]] = []                                # sampling: what each row drew
    before = drafter.forwards
    if levels:
        logits = drafter.begin(sequence, prefix_len)[:vocab_size].unsqueeze(0)
    depth = 0
    while depth < levels:
        depth += 1
        children, used = _add_children(slots, frontier, open_rows, logits, rule, used, sampler, drawn)
        logp = slots._logp[children]
        expandable = rule.expands(depth, logp) & (logp > -math.inf) & (used < rule.max_nodes)
        if depth == levels:
            growing = expandable.any()
            # a tree still growing where the plan ends (a confident path beyond D_0, typically)
            # gets one level more: the one read during growth
            if levels == room or not bool(growing):
                break
            levels = room
        pick = logp.masked_fill(~expandable, -math.inf).topk(sizes[depth]).indices.sort().values
        frontier, open_rows = children[pick], expandable[pick]
        logits = drafter.expand(slots, frontier, prefix_len, depth)[:, :vocab_size]
    drafted = _compact(slots, rule, drafter.forwards - before, growing, drawn)
    drafted.planned = planned
    return drafted


def _compact(slots: TokenTree, rule: GrowthRule, forwards: int, growing: Tensor,
             drawn: list[tuple[Tensor, ...]]) -> DraftedTree:
    """Read the grown slots once and keep the real nodes (room left for a looked-up chain
    within the node budget)."""
    valid = slots.logp > -math.inf
    parts = [valid.long(), slots.tokens, slots.parents, growing.long().view(1)]
    parts += [torch.cat([rows, open_rows.long(), width]) for rows, open_rows, width, _, _ in drawn]
    host = torch.cat(parts).tolist()   # the one read of the grown tree
    n = slots.size
    flags, tokens, parents = host[:n], host[n:2 * n], host[2 * n:3 * n]
    valid = [bool(f) for f in flags]
    tree = slots.compact(valid, tokens, parents, spare=min(rule.lookup, rule.max_nodes + 1 - sum(valid)))
    drafted = DraftedTree(tree, forwards, nodes=tree.size, depth=tree.depth, growing=bool(host[3 * n]))
    renumber = {slot: node for node, slot in enumerate(i for i, f in enumerate(flags) if f)}
    offset = 3 * n + 1
    for rows, _, _, probs, draws in drawn:   # sampling: the proposals of every expanded node
        f = rows.numel()
        chunk, offset = host[offset:offset + 3 * f], offset + 3 * f
        rows_read = zip(chunk[:f], chunk[f:2 * f], chunk[2 * f:], strict=True)
        for row, (slot, is_open, width) in enumerate(rows_read):
            if is_open:
                drafted.proposals[renumber[slot]] = Proposals(probs[row], draws[row, :width])
    return drafted


def _add_children(slots: TokenTree, frontier: Tensor, open_rows: Tensor, logits: Tensor, rule: GrowthRule,
                  used: Tensor, sampler: Sampler | None, drawn: list) -> tuple[Tensor, Tensor]:
    """Give each open frontier row its top-B(u) draft tokens (or B(u) draws without replacement
    when sampling), prune by p(v) and cut to the budget: all B_max slots of every row are added,
    the rejected ones with log q = -inf. Returns the new slots [F * B_max] and the nodes kept."""
    if sampler is None:
        probs = torch.softmax(logits.float(), dim=-1)
        q, tokens = probs.topk(rule.max_branch, dim=-1)  # [F, B_max], distinct tokens per row
        width = rule.breadth(q[:, 0])
    else:
        probs = sampler.probs(logits.float())
        tokens = sampler.draw_without_replacement(probs, rule.max_branch)  # [F, B_max], draw order
        q = probs.gather(1, tokens)
        # B(u) from the confidence max q(. | u), never more draws than tokens with q > 0
        width = torch.minimum(rule.breadth(probs.max(dim=-1).values), (probs > 0).sum(dim=-1))
        drawn.append((frontier, open_rows, width, probs, tokens))
    keep = (torch.arange(rule.max_branch, device=q.device) < width.unsqueeze(1)) & open_rows.unsqueeze(1)
    logq = q.log()
    logp = slots._logp[frontier].unsqueeze(1) + logq
    if rule.threshold > 0:
        keep &= logp >= math.log(rule.threshold)
    # strict node budget: the most probable candidates win
    order = logp.masked_fill(~keep, -math.inf).flatten().argsort(descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
    keep = keep.flatten() & (rank < rule.max_nodes - used)
    children = slots.add(frontier.repeat_interleave(rule.max_branch), tokens.flatten(),
                         logq.flatten().masked_fill(~keep, -math.inf))
    return children, used + keep.sum()
