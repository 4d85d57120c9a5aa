"""Efficiency by construction, checked through forward counters and the tokens each forward sees."""

from __future__ import annotations

import pytest
from tiny_models import prompt

from dynatree_lib import DynaTree, FixedTree, Linear, check_tree_attention, generate


def _record(model, name, events):
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        events.append((name, ids.shape[1]))
    return model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("method", [Linear(k=5), FixedTree(depth=4, branch=2, threshold=0.01),
                                    DynaTree()], ids=repr)
def test_one_target_forward_per_iteration_and_cached_draft(pair, method):
    target, draft = pair
    check_tree_attention(target)  # the once-per-model probe is not part of generation
    check_tree_attention(draft)
    events: list[tuple[str, int]] = []
    handles = [_record(target, "target", events), _record(draft, "draft", events)]
    try:
        ids = prompt(9, length=20)
        stats = generate(target, draft, ids, method, 60, eos_token_id=[]).stats
    finally:
        for h in handles:
            h.remove()
    target_calls = [n for who, n in events if who == "target"]
    # the prefill, then exactly one forward per iteration: no crop-and-recompute pass
    assert len(target_calls) == stats.target_forwards == stats.iterations + 1
    assert target_calls[0] == 20
    assert target_calls[1:] == [size + 1 for size in stats.tree_sizes]  # root + draft nodes

    # draft forwards between two target forwards: the levels grown, decided before growing
    # (growth.next_levels): at most one level beyond the depth the previous tree reached
    segments, current = [], []
    for who, n in events[1:]:
        if who == "target":
            segments.append(current)
            current = []
        else:
            current.append(n)
    assert len(segments) == stats.iterations
    assert sum(len(s) for s in segments) == stats.draft_forwards
    for segment, depth in zip(segments[1:], stats.drafted_depth, strict=False):
        assert len(segment) <= max(depth, 1) + 1
    # the draft cache persists: the context is fed once, later iterations feed <= 2 pending tokens
    assert segments[0][0] == 21
    assert all(s[0] <= 2 for s in segments[1:] if s)


def test_stats_are_consistent(pair):
    target, draft = pair
    result = generate(target, draft, prompt(2), DynaTree(), 50, eos_token_id=[])
    s = result.stats
    assert s.new_tokens == 50 == 1 + sum(s.committed)
    assert s.committed == [a + 1 for a in s.accepted]
    assert 0 < s.acceptance_rate <= 1 and 0 < s.tree_efficiency <= 1
    assert s.tau == pytest.approx(50 / s.target_forwards)
    per_depth = s.accepted_per_depth
    assert per_depth == sorted(per_depth, reverse=True) and per_depth[0] <= 1
    assert s.time_total >= s.time_draft + s.time_verify and s.ttft > 0
    assert all(size <= DynaTree().max_nodes for size in s.tree_sizes)


def test_trace_describes_each_iteration(pair):
    target, draft = pair
    result = generate(target, draft, prompt(5), FixedTree(depth=3, branch=2, threshold=0.01), 30,
                      eos_token_id=[], trace=True)
    assert len(result.trace) == result.stats.iterations
    for it in result.trace:
        n = len(it.tokens)
        assert len(it.parents) == len(it.depths) == len(it.draft_prob) == len(it.target_next) == n
        assert it.parents[0] == -1 and it.accepted_path[0] == 0
        for parent, child in zip(it.accepted_path, it.accepted_path[1:], strict=False):
            assert it.parents[child] == parent and it.tokens[child] == it.target_next[parent]
        assert it.committed[-1] == it.target_next[it.accepted_path[-1]]
    assert sum(len(it.committed) for it in result.trace) + 1 == 30


def test_node_budget_is_strict(pair):
    target, draft = pair
    method = DynaTree(max_nodes=5, threshold=0.001, rho_stop=0.001, rho_deep=0.002)
    stats = generate(target, draft, prompt(1), method, 30, eos_token_id=[]).stats
    assert max(stats.tree_sizes) == 5
