"""The tree shape DynaTree chose most often on a workload, as a static tree for a serving engine.

Serving engines verify static trees (vLLM's ``speculative_token_tree``: every node as the
tuple of its ancestors' ranks among their siblings, ``(0,)`` the draft's first choice after
the root, ``(0, 1)`` the second choice after that, ...). DynaTree's trees change every
iteration; this picks the shape it grew most often and measures, on the same run, how much a
static tree of that shape would have kept: the accepted path's longest prefix inside the shape
(a lower bound: a deeper static tree could have gone on where DynaTree's tree stopped).
"""

from __future__ import annotations

from collections import Counter

import torch

from ..core.decode import generate
from ..core.methods import DynaTree
from ..core.results import IterationTrace

Path = tuple[int, ...]


def rank_paths(trace: IterationTrace) -> list[Path]:
    """Every drafted node of a trace (root and grafted lookup nodes excluded) as the ranks of
    the nodes on its root path among their siblings. Siblings are added in the draft's order
    of probability, so rank 0 is the most probable child."""
    paths: list[Path] = [()]
    children: Counter = Counter()
    for node in range(1, trace.drafted_nodes):
        parent = trace.parents[node]
        paths.append(paths[parent] + (children[parent],))
        children[parent] += 1
    return paths[1:]


def accepted_rank_path(trace: IterationTrace) -> Path:
    """The accepted drafted path of a trace as ranks (``()`` when nothing drafted was accepted)."""
    paths = [()] + rank_paths(trace)
    drafted = [node for node in trace.accepted_path if node < trace.drafted_nodes]
    return paths[drafted[-1]] if drafted else ()


def shape_summary(traces: list[IterationTrace]) -> dict:
    """The most common shape and what a static tree of it keeps of the accepted paths."""
    shapes = Counter(tuple(rank_paths(t)) for t in traces)
    shape, count = shapes.most_common(1)[0]
    inside = set(shape)
    accepted_paths = [accepted_rank_path(t) for t in traces]
    kept, per_node = [], Counter()
    for accepted in accepted_paths:
        depth = next((d for d in range(len(accepted), 0, -1) if accepted[:d] in inside), 0)
        kept.append(depth)
        per_node.update(accepted[:d] for d in range(1, depth + 1))
    n = len(traces)
    return {"shape": [list(p) for p in shape], "nodes": len(shape),
            "depth": max((len(p) for p in shape), default=0), "iterations": n, "share": count / n,
            "distinct_shapes": len(shapes),
            "vllm_speculative_token_tree": str([tuple(p) for p in shape]),
            "static_accepted_per_iteration": sum(kept) / n,
            "dynatree_accepted_per_iteration": sum(map(len, accepted_paths)) / n,
            "node_acceptance": {str(tuple(p)): per_node[p] / n for p in shape}}


def static_tree_document(pair, prompts: list[list[int]], max_new_tokens: int,
                         method: DynaTree | None = None) -> dict:
    """Run ``method`` (default ``DynaTree()``) with the pair's default drafter on every prompt,
    tracing every tree, and summarise the shapes (:func:`shape_summary`)."""
    method = method or DynaTree()
    traces: list[IterationTrace] = []
    for ids in prompts:
        input_ids = torch.tensor([ids], device=pair.device)
        result = generate(pair.target, pair.drafter, input_ids, method, max_new_tokens, eos_token_id=[],
                          trace=True)
        traces.extend(result.trace)
    return {"pair": pair.name, "drafter": pair.default_drafter, "prompts": len(prompts),
            "max_new_tokens": max_new_tokens, "method": repr(method), **shape_summary(traces)}
