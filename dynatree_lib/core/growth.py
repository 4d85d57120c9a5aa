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
    lookup: int = 0  # room for a grafted context-lookup chain (lookup.py), beyond max_nodes

    @property
    def capacity(self) -> int:
        """Most tokens one verification appends to a cache: the root and every candidate node."""
        return self.max_nodes + 1 + self.lookup


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
    return GrowthRule(depth, method.k, 1, 0.0, _constant(1), _shallower_than(depth))


@register_method("fixed", FixedTree)
def fixed_tree_rule(method: FixedTree, controller: None, depth_cap: int) -> GrowthRule:
    """B children per node to depth D, pruned at epsilon, at most N_max nodes."""
    depth = min(method.depth, depth_cap)
    return GrowthRule(depth, method.max_nodes, method.branch, method.threshold,
                      _constant(method.branch), _shallower_than(depth))


@register_method("dynatree", DynaTree, adapts=True)
def dynatree_rule(method: DynaTree, controller: HistoryController, depth_cap: int) -> GrowthRule:
    """Breadth from the draft's confidence, depth from p(u) and the controller's D_0."""
    max_depth = min(method.max_depth, depth_cap)
    base_depth = min(controller.depth, max_depth)
    tau_high, tau_low = controller.tau_high, method.tau_low
    log_stop, log_deep = math.log(method.rho_stop), math.log(method.rho_deep)

    def breadth(confidence: Tensor) -> Tensor:
        width = torch.full_like(confidence, method.mid_branch, dtype=torch.long)
        width[confidence >= tau_high] = method.min_branch
        width[confidence < tau_low] = method.max_branch
        return width

    def expands(depth: int, logp: Tensor) -> Tensor:
        if depth >= max_depth:
            return torch.zeros_like(logp, dtype=torch.bool)
        gate = logp >= log_stop
        return gate if depth < base_depth else gate & (logp > log_deep)

    return GrowthRule(max_depth, method.max_nodes, method.max_branch, method.threshold,
                      breadth, expands, min(method.lookup, depth_cap))


def _constant(width: int) -> Callable[[Tensor], Tensor]:
    return lambda confidence: torch.full_like(confidence, width, dtype=torch.long)


def _shallower_than(max_depth: int) -> Callable[[int, Tensor], Tensor]:
    return lambda depth, logp: torch.full_like(logp, depth < max_depth, dtype=torch.bool)


@dataclass
class DraftedTree:
    """A grown tree, the number of draft forwards it took and, when sampling, the children
    drawn at every expanded node (:class:`dynatree_lib.core.sampling.Proposals`)."""

    tree: TokenTree
    forwards: int
    proposals: dict[int, Proposals] = field(default_factory=dict)
    nodes: int = 1   # the draft's own nodes, root included (nodes grafted later come after them)
    depth: int = 0   # the draft's own tree depth


def draft_tree(drafter, sequence: Tensor, prefix_len: int, rule: GrowthRule, vocab_size: int,
               sampler: Sampler | None = None) -> DraftedTree:
    """Grow one tree whose root is ``sequence[-1]`` (the last committed token) at ``prefix_len``.

    Args:
        drafter: a :class:`dynatree_lib.core.drafter.Drafter` (a causal-LM draft or the feature head).
        sequence: [L] every committed token, root last.
        rule: the iteration's growth rule.
        vocab_size: draft logits beyond it are ignored (padded embedding matrices).
        sampler: greedy trees take each node's top-B(u) tokens; with a sampler the B(u)
            children are drawn without replacement from the draft's warped distribution
            (:mod:`dynatree_lib.core.sampling`), and pruned draws are kept as proposals.
    """
    device = sequence.device
    tree = TokenTree(sequence[-1], rule.max_nodes + 1 + rule.lookup, device)
    drafted = DraftedTree(tree, 0)
    if rule.max_depth == 0:
        return drafted
    before = drafter.forwards
    logits = drafter.begin(sequence, prefix_len)[:vocab_size].unsqueeze(0)
    frontier, depth = torch.zeros(1, dtype=torch.long, device=device), 0
    while True:
        children = _add_children(tree, frontier, logits, rule, sampler, drafted.proposals)
        depth += 1
        if children.numel() == 0 or tree.size > rule.max_nodes:
            break
        frontier = children[rule.expands(depth, tree.logp[children])]
        if frontier.numel() == 0:
            break
        logits = drafter.expand(tree, frontier, prefix_len, depth)[:, :vocab_size]
    drafted.forwards = drafter.forwards - before
    drafted.nodes, drafted.depth = tree.size, tree.depth
    return drafted


def _add_children(tree: TokenTree, frontier: Tensor, logits: Tensor, rule: GrowthRule,
                  sampler: Sampler | None = None, proposals: dict | None = None) -> Tensor:
    """Give each frontier node its top-B(u) draft tokens (or B(u) draws without replacement
    when sampling), prune by p(v) and cut to the budget."""
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
        for row, (node, count) in enumerate(zip(frontier.tolist(), width.tolist(), strict=True)):
            proposals[node] = Proposals(probs[row], tokens[row, :count])  # one host sync, not one per row
    keep = torch.arange(rule.max_branch, device=q.device) < width.unsqueeze(1)
    logq = q.log()
    logp = tree._logp[frontier].unsqueeze(1) + logq
    if rule.threshold > 0:
        keep &= logp >= math.log(rule.threshold)
    budget = rule.max_nodes + 1 - tree.size
    if int(keep.sum()) > budget:  # strict node budget: the most probable candidates win
        best = logp.masked_fill(~keep, -math.inf).flatten().topk(budget).indices
        keep = torch.zeros_like(keep).flatten().index_fill_(0, best, True).view_as(keep)
    rows, cols = keep.nonzero(as_tuple=True)  # row-major: siblings stay together, BFS order holds
    return tree.add(frontier[rows], tokens[rows, cols], logq[rows, cols])
