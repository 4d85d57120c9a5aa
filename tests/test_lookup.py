"""Context lookup (DynaTree(lookup=L), an extension): continuation search, grafting, exactness."""

from __future__ import annotations

import pytest
import torch
from tiny_models import hf_greedy, prompt

from dynatree_lib import DynaTree, generate
from dynatree_lib.core.lookup import find_continuation, graft_chain
from dynatree_lib.core.tree import TokenTree
from dynatree_lib.harness.bench import parse_methods


def test_find_continuation_prefers_the_longest_suffix_and_the_latest_match():
    seq = torch.tensor([5, 1, 2, 9, 9, 1, 2, 7, 8, 3, 2])
    # suffix [3, 2] never occurred before; [2] occurred at 2 and 6: the latest wins -> 7, 8, 3
    assert find_continuation(seq, 3) == [7, 8, 3]
    assert find_continuation(seq.tolist(), 3) == [7, 8, 3]   # the loop passes host lists
    assert find_continuation(torch.tensor([1, 2, 3, 1, 2]), 5) == [3, 1, 2]  # 2-gram match
    assert find_continuation(torch.tensor([1, 2, 3]), 4) == []
    assert find_continuation([4], 4) == []


def test_graft_reuses_matching_nodes_and_keeps_siblings_distinct():
    tree = TokenTree(0, capacity=10, device="cpu")
    tree.add(torch.tensor([0, 0]), torch.tensor([10, 11]), torch.zeros(2))
    tree.add(torch.tensor([1]), torch.tensor([20]), torch.zeros(1))
    added = graft_chain(tree, torch.tensor([10, 20, 30, 40]))
    assert added == 2  # 10 and 20 exist on one path; 30, 40 are new
    assert tree.parents.tolist() == [-1, 0, 0, 1, 3, 4]
    assert tree.depths.tolist() == [0, 1, 1, 2, 3, 4]
    graft_chain(tree, torch.tensor([11, 12]))
    for parent in range(tree.size):
        kids = tree.tokens[tree.parents == parent].tolist()
        assert len(kids) == len(set(kids))


@pytest.mark.parametrize("lookup", [3, 10])
def test_dynatree_with_lookup_stays_exact(pair, lookup):
    target, draft = pair
    for seed in range(4):
        # a prompt that repeats itself gives the lookup something to copy
        base = prompt(seed, length=6)
        ids = torch.cat([base, base, base[:, :3]], dim=1)
        result = generate(target, draft, ids, DynaTree(lookup=lookup), 40, eos_token_id=[])
        assert result.new_tokens == hf_greedy(target, ids, 40)


def test_lookup_chain_is_grafted_outside_the_node_budget(pair):
    target, draft = pair
    base = prompt(3, length=8)
    ids = torch.cat([base, base], dim=1)
    method = DynaTree(max_nodes=1, lookup=10)
    result = generate(target, draft, ids, method, 24, eos_token_id=[], trace=True)
    assert result.new_tokens == hf_greedy(target, ids, 24)
    stats = result.stats
    assert max(stats.tree_sizes) <= 1  # the draft's nodes keep their budget ...
    assert 0 < max(stats.lookup_nodes) <= 10  # ... and grafted nodes are counted apart
    everything = torch.cat([ids[0], torch.tensor(result.new_tokens)])
    grafted_any = False
    for step in result.trace:
        wanted = 24 - (step.prefix_len + 1 - ids.shape[1]) - 1  # tokens still wanted after the root
        continuation = find_continuation(everything[:step.prefix_len + 1], min(10, wanted))
        assert set(continuation) <= set(step.tokens)  # the lookup's tokens are all in the tree
        grafted_any |= bool(continuation)
    assert grafted_any


def test_lookup_variant_in_benchmarks_and_validation():
    (variant,) = parse_methods("dynatree+lookup")
    assert variant.label == "dynatree+lookup" and variant.config["lookup"] == 10
    with pytest.raises(ValueError, match="lookup"):
        DynaTree(lookup=-1)
