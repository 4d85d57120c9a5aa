"""export-tree: DynaTree's most common tree shape as a static tree (vLLM's rank-path form) and
what a static tree of that shape keeps of the accepted paths."""

from __future__ import annotations

import ast

from tiny_models import build_target, noisy_copy, prompt

from dynatree_lib.core.results import IterationTrace
from dynatree_lib.harness.static_tree import (
    accepted_rank_path,
    rank_paths,
    shape_summary,
    static_tree_document,
)
from dynatree_lib.models.pairs import ModelPair


def _trace(parents, accepted, drafted=None):
    n = len(parents)
    return IterationTrace(prefix_len=5, tokens=list(range(n)), parents=parents, depths=[0] * n,
                          draft_prob=[1.0] * n, path_prob=[1.0] * n, target_next=[0] * n,
                          accepted_path=accepted, committed=[], drafted_nodes=drafted or n)


def test_nodes_become_rank_paths_and_grafted_nodes_are_left_out():
    # root; children 1, 2; node 3 under 1; node 4 under 2; node 5 a grafted lookup node
    trace = _trace([-1, 0, 0, 1, 2, 0], [0, 2, 4], drafted=5)
    assert rank_paths(trace) == [(0,), (1,), (0, 0), (1, 0)]
    assert accepted_rank_path(trace) == (1, 0)
    assert accepted_rank_path(_trace([-1, 0, 0], [0])) == ()


def test_the_most_common_shape_and_what_it_keeps():
    chain = _trace([-1, 0, 1], [0, 1, 2])            # (0,), (0, 0): both accepted
    fan = _trace([-1, 0, 0, 0], [0, 3])              # (0,), (1,), (2,): the third child accepted
    summary = shape_summary([chain, chain, fan])
    assert summary["shape"] == [[0], [0, 0]] and summary["share"] == 2 / 3 and summary["distinct_shapes"] == 2
    assert ast.literal_eval(summary["vllm_speculative_token_tree"]) == [(0,), (0, 0)]
    # the chain keeps 2 per iteration; the fan's accepted (2,) is outside the chain shape: 0
    assert summary["static_accepted_per_iteration"] == (2 + 2 + 0) / 3
    assert summary["dynatree_accepted_per_iteration"] == (2 + 2 + 1) / 3
    assert summary["node_acceptance"] == {"(0,)": 2 / 3, "(0, 0)": 2 / 3}


def test_a_run_on_tiny_models_gives_a_valid_static_tree():
    target = build_target("llama")
    pair = ModelPair(target, noisy_copy(target, 0.02), None, "tiny", target.device, target.dtype)
    doc = static_tree_document(pair, [prompt(s).tolist()[0] for s in range(2)], 24)
    shape = {tuple(p) for p in doc["shape"]}
    assert all(p[:-1] in shape or len(p) == 1 for p in shape)          # every node's parent is in it
    assert 0 < doc["share"] <= 1 and doc["iterations"] >= 2
    assert 0 <= doc["static_accepted_per_iteration"] <= doc["dynatree_accepted_per_iteration"] <= 8
