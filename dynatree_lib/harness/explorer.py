"""The static site's explorer: how depth, breadth and the thresholds shape DynaTree's trees and speed.

``python -m dynatree_lib explore`` runs a grid of DynaTree settings (D_max, B_max,
theta_high, epsilon) as one benchmark run (every setting and AR on the same prompts, order
rotated) and stores, for every setting, the trees of its first twelve iterations on one prompt.
``viz.explorer_html`` turns the file into controls and a figure that work in the static
book, without a kernel: every number shown was measured by that command.
"""

from __future__ import annotations

import itertools

import torch

from ..core.decode import IterationTrace, generate
from .runner import MethodSpec, spec

# theta_high spreads over (theta_low = 0.4, 1): a draft confidence between the two is what it decides on.
# Every value changes some tree (a test checks the committed file): D_max caps the depth (D_0
# follows it down), and on this pair's early trees depths beyond 4 are rare, so D_max = 8 would
# draw what 4 draws; epsilon 0.1 already empties most first trees of this pair.
GRID = {"max_depth": (1, 2, 4), "max_branch": (1, 2, 3), "theta_high": (0.6, 0.9),
        "threshold": (0.01, 0.05)}


def explorer_label(max_depth: int, max_branch: int, theta_high: float, threshold: float) -> str:
    return f"D_max={max_depth} B_max={max_branch} theta_high={theta_high:g} eps={threshold:g}"


def explorer_specs(grid: dict = GRID) -> list[MethodSpec]:
    """One DynaTree per grid point; D_0 and B_mid follow D_max and B_max down where they must.
    History adaptation is off, so that the knobs alone shape the trees: with it, the controller
    moves D_0 to 1 on most iterations of this pair and every setting draws the same chains."""
    specs = []
    for depth, branch, theta_high, threshold in itertools.product(*grid.values()):
        specs.append(spec("dynatree", explorer_label(depth, branch, theta_high, threshold),
                          max_depth=depth, base_depth=min(5, depth), max_branch=branch,
                          mid_branch=min(2, branch), theta_high=theta_high, threshold=threshold,
                          adapt=False))
    return specs


def tree_record(trace: IterationTrace, tokenizer) -> dict:
    """A trace as plain lists, with each node's token text (what the explorer draws)."""
    text = [tokenizer.decode([t]) if tokenizer is not None else str(t) for t in trace.tokens]
    return {"tokens": trace.tokens, "text": text, "parents": trace.parents, "depths": trace.depths,
            "path_prob": trace.path_prob, "accepted_path": trace.accepted_path,
            "committed": trace.committed, "prefix_len": trace.prefix_len}


def first_trees(pair, ids: list[int], specs: list[MethodSpec], iterations: int = 12,
                max_new_tokens: int = 48) -> dict[str, list[dict]]:
    """{label: the trees of the first ``iterations`` iterations} on one prompt (fewer if it ends sooner).

    Early trees are often tiny (the first one can be empty), so the explorer needs several to
    open on one that shows something (``viz.explorer_start``)."""
    input_ids = torch.tensor([ids], device=pair.device)
    out = {}
    for method in specs:
        trace = generate(pair.target, pair.drafter, input_ids, method.build(), max_new_tokens,
                         eos_token_id=[], trace=True).trace or []
        out[method.label] = [tree_record(t, pair.tokenizer) for t in trace[:iterations]]
    return out
