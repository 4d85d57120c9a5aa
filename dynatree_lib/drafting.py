"""Growing the candidate tree with the draft model, one level per draft forward.

All methods share one growth procedure; they differ only in their
:class:`GrowthRule`: how many children a node gets (breadth), which nodes are
expanded (depth gating), the pruning threshold and the node budget.

The draft keeps its own KV cache across iterations. At the start of an iteration
it holds a prefix of the committed tokens; the first draft forward feeds the
missing committed tokens (``pending``, ending with the root), every later forward
feeds the whole frontier of one level, batched under a tree mask, at positions
``prefix_len + depth``. Siblings never see each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .adapt import HistoryController
from .methods import DynaTree, FixedTree, Linear
from .tree import TokenTree, additive_mask


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


def growth_rule(method: Linear | FixedTree | DynaTree, controller: HistoryController | None,
                depth_cap: int) -> GrowthRule:
    """The rule of one iteration; ``depth_cap`` limits depth to the tokens still wanted."""
    if isinstance(method, Linear):
        depth = min(method.k, depth_cap)
        return GrowthRule(depth, method.k, 1, 0.0, _constant(1), _shallower_than(depth))
    if isinstance(method, FixedTree):
        depth = min(method.depth, depth_cap)
        return GrowthRule(depth, method.max_nodes, method.branch, method.threshold,
                          _constant(method.branch), _shallower_than(depth))
    if isinstance(method, DynaTree):
        assert controller is not None
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
    raise TypeError(f"no growth rule for {type(method).__name__}")


def _constant(width: int) -> Callable[[Tensor], Tensor]:
    return lambda confidence: torch.full_like(confidence, width, dtype=torch.long)


def _shallower_than(max_depth: int) -> Callable[[int, Tensor], Tensor]:
    return lambda depth, logp: torch.full_like(logp, depth < max_depth, dtype=torch.bool)


@dataclass
class DraftedTree:
    """A grown tree, the draft-cache slot of every forwarded non-root node and the forward count.

    ``draft_rank[i]`` is the offset of node i's KV after the root's slot in the draft cache
    (-1 for nodes the draft never fed: leaves). ``root_cached`` says whether the first
    forward (pending tokens and root) ran.
    """

    tree: TokenTree
    draft_rank: Tensor
    root_cached: bool
    forwards: int


def draft_tree(draft, cache, pending: Tensor, prefix_len: int, rule: GrowthRule,
               vocab_size: int) -> DraftedTree:
    """Grow one tree whose root is ``pending[-1]`` at position ``prefix_len``.

    Args:
        draft: the draft model; ``cache`` its DynamicCache holding committed tokens
            [0, prefix_len + 1 - len(pending)).
        pending: [p] committed tokens missing from the draft cache, root last.
        rule: the iteration's growth rule.
        vocab_size: draft logits beyond it are ignored (padded embedding matrices).
    """
    device = pending.device
    tree = TokenTree(pending[-1], rule.max_nodes + 1 + rule.lookup, device)
    rank = torch.full((tree.capacity,), -1, dtype=torch.long, device=device)
    if rule.max_depth == 0:
        return DraftedTree(tree, rank, False, 0)

    start = prefix_len + 1 - pending.numel()
    positions = torch.arange(start, prefix_len + 1, device=device).unsqueeze(0)
    logits = draft(pending.unsqueeze(0), past_key_values=cache, position_ids=positions,
                   use_cache=True, logits_to_keep=1).logits[0, :, :vocab_size]
    forwards, frontier, depth = 1, torch.zeros(1, dtype=torch.long, device=device), 0
    fed: list[Tensor] = []  # non-root nodes in draft-cache order
    while True:
        children = _add_children(tree, frontier, logits, rule)
        depth += 1
        if children.numel() == 0 or tree.size > rule.max_nodes:
            break
        frontier = children[rule.expands(depth, tree.logp[children])]
        if frontier.numel() == 0:
            break
        fed.append(frontier)
        order = torch.cat(fed)
        rank[frontier] = torch.arange(order.numel() - frontier.numel(), order.numel(), device=device)
        allowed = torch.ones(frontier.numel(), prefix_len + 1 + order.numel(), dtype=torch.bool,
                             device=device)
        allowed[:, prefix_len + 1:] = tree._ancestors[frontier][:, order]
        mask = additive_mask(allowed, draft.dtype)
        positions = torch.full((1, frontier.numel()), prefix_len + depth, device=device)
        logits = draft(tree._tokens[frontier].unsqueeze(0), past_key_values=cache,
                       position_ids=positions, attention_mask=mask,
                       use_cache=True).logits[0, :, :vocab_size]
        forwards += 1
    return DraftedTree(tree, rank, True, forwards)


def _add_children(tree: TokenTree, frontier: Tensor, logits: Tensor, rule: GrowthRule) -> Tensor:
    """Give each frontier node its top-B(u) draft tokens, prune by p(v) and cut to the budget."""
    probs = torch.softmax(logits.float(), dim=-1)
    q, tokens = probs.topk(rule.max_branch, dim=-1)  # [F, B_max], distinct tokens per row
    keep = torch.arange(rule.max_branch, device=q.device) < rule.breadth(q[:, 0]).unsqueeze(1)
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
