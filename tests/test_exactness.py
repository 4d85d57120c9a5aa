"""Greedy exactness: every method reproduces the target's own greedy generate, token for token."""

from __future__ import annotations

import pytest
import torch
from tiny_models import VOCAB, build_target, hf_greedy, noisy_copy, prompt

from dynatree_lib import Autoregressive, DynaTree, FixedTree, Linear, compare_with_autoregressive, generate
from dynatree_lib.core.tree import TokenTree

METHODS = [Autoregressive(), Linear(k=4), Linear(), FixedTree(), FixedTree(depth=4, branch=2, threshold=0.01),
           DynaTree(), DynaTree(theta_high=0.6, theta_low=0.3, threshold=0.01, max_nodes=24)]


@pytest.mark.parametrize("method", METHODS, ids=repr)
@pytest.mark.parametrize("seed", range(6))
def test_matches_hf_greedy_float32(pair, method, seed):
    target, draft = pair
    ids = prompt(seed, length=4 + 3 * seed)
    result = generate(target, draft, ids, method, max_new_tokens=40, eos_token_id=[])
    assert result.new_tokens == hf_greedy(target, ids, 40)
    assert len(result.new_tokens) == 40


@pytest.mark.parametrize("method", METHODS[1:], ids=repr)
def test_matches_hf_greedy_float64(pair, method):
    target, draft = (m.double() for m in (build_target("llama"), noisy_copy(build_target("llama"), 0.05)))
    for seed in range(3):
        ids = prompt(100 + seed)
        assert generate(target, draft, ids, method, 32, eos_token_id=[]).new_tokens == \
            hf_greedy(target, ids, 32)


def test_speculation_actually_accepts_drafts(pair):
    """The test pair must exercise multi-token acceptance, or exactness tests prove little."""
    target, draft = pair
    stats = generate(target, draft, prompt(7), DynaTree(), 48, eos_token_id=[]).stats
    assert max(stats.accepted) >= 3 and stats.tau > 1.5


@pytest.mark.parametrize("method", [Autoregressive(), Linear(k=3), FixedTree(), DynaTree()], ids=repr)
def test_eos_stops_where_hf_stops(pair, method):
    target, draft = pair
    ids = prompt(3)
    free = hf_greedy(target, ids, 40)
    eos = free[17]  # a token the target emits mid-way: generation must stop at its first occurrence
    want = hf_greedy(target, ids, 40, eos_token_id=eos)
    got = generate(target, draft, ids, method, 40, eos_token_id=eos).new_tokens
    assert got == want and got[-1] == eos and len(got) <= 18


def test_eos_default_comes_from_generation_config(pair):
    target, draft = pair
    ids = prompt(4)
    free = hf_greedy(target, ids, 30)
    target.generation_config.eos_token_id = free[9]
    try:
        got = generate(target, draft, ids, DynaTree(), 30).new_tokens
        assert got == hf_greedy(target, ids, 30, eos_token_id=free[9])
    finally:
        target.generation_config.eos_token_id = None


def _random_tree(generator, vocab: int, size: int) -> TokenTree:
    parents = [-1] + [int(torch.randint(0, i, (1,), generator=generator)) for i in range(1, size)]
    parents = [-1] + sorted(parents[1:])  # BFS-like: parents never after children
    tokens = torch.randint(0, vocab, (size,), generator=generator).tolist()
    return TokenTree.from_parents(tokens, parents, device="cpu")


def test_tree_node_logits_equal_sequential_path(pair):
    """Per-node check: verification logits == sequential forward along the node's root path."""
    from dynatree_lib import tree_logits_error

    target, _ = pair
    generator = torch.Generator().manual_seed(5)
    for size in (2, 7, 20):
        tree = _random_tree(generator, 96, size)
        errors = tree_logits_error(target, prompt(size), tree)
        assert errors.max() < 1e-4, errors
        if tree.depth < size - 1:  # positions = BFS index differ from depths somewhere
            assert tree_logits_error(target, prompt(size), tree, depth_positions=False).max() > 1e-2


def test_bfloat16_check_reports_divergence_or_identity(pair):
    target, draft = (m.to(torch.bfloat16) for m in pair)
    try:
        report = compare_with_autoregressive(target, draft, prompt(11), DynaTree(), 32,
                                             eos_token_id=[])
        if report.identical:
            assert report.compared == 32 and "identical" in str(report)
        else:  # a divergence in bf16 must come with the target's margin at that token
            assert report.first_divergence is not None and report.margin >= 0
            assert "margin" in str(report)
    finally:
        for m in pair:
            m.float()


def test_verdicts_for_the_chapters():
    from dynatree_lib import verdict, worst_verdict

    target = build_target("llama")
    ids = prompt(9)
    reference = generate(target, None, ids, Autoregressive(), 12, eos_token_id=[]).new_tokens
    assert verdict(target, ids, reference, list(reference)) == "identical"
    wrong = list(reference)
    wrong[3] = (wrong[3] + 1) % VOCAB          # a token the target does not pick: far from its best
    assert verdict(target, ids, reference, wrong) == "mismatch"
    assert worst_verdict(["identical", "near-tie", "identical"]) == "near-tie"
    assert worst_verdict(iter(["near-tie", "mismatch"])) == "mismatch" and worst_verdict([]) == "identical"
