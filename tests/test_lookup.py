"""Context lookup (DynaTree(lookup=L), an extension): continuation search, grafting, calibration,
one node budget, exactness."""

from __future__ import annotations

import pytest
import torch
from tiny_models import hf_greedy, prompt

from dynatree_lib import DynaTree, default_method, generate
from dynatree_lib.core.lookup import find_continuation, graft_chain
from dynatree_lib.core.sources import Chain, LookupSource, accepted_on_chain
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
    nodes = graft_chain(tree, torch.tensor([10, 20, 30, 40]))
    assert nodes == [1, 3, 4, 5]  # 10 and 20 exist on one path (nodes 1, 3); 30, 40 are new
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


@pytest.mark.parametrize("max_nodes", [4, 16])
def test_lookup_and_draft_share_one_node_budget(pair, max_nodes):
    target, draft = pair
    base = prompt(3, length=8)
    ids = torch.cat([base, base], dim=1)
    method = DynaTree(max_nodes=max_nodes, lookup=10)
    result = generate(target, draft, ids, method, 24, eos_token_id=[], trace=True)
    assert result.new_tokens == hf_greedy(target, ids, 24)
    stats = result.stats
    assert all(d + g <= max_nodes for d, g in zip(stats.tree_sizes, stats.lookup_nodes, strict=True))
    everything = torch.cat([ids[0], torch.tensor(result.new_tokens)])
    looked_up_any = False
    for step in result.trace:
        continuation = find_continuation(everything[:step.prefix_len + 1], 10)
        grafted = step.tokens[step.drafted_nodes:]   # nodes beyond the draft's: lookup's
        # the chain is a prefix of the continuation; its first tokens may be the draft's nodes
        assert any(continuation[j:j + len(grafted)] == grafted for j in range(len(continuation) + 1))
        looked_up_any |= bool(grafted)
    assert looked_up_any
    assert len(stats.accepted_lookup) == stats.iterations


def test_lookup_confidence_is_calibrated_per_match_length():
    source = LookupSource(max_tokens=10, max_ngram=3, window=10)
    context = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3]   # a 3-token match, continuation 4, 5, ...
    first = source.propose(context, threshold=0.05, room=10)
    assert first.match == 3 and first.confidence == 0.5
    assert first.tokens == [4, 5, 6, 7]           # 0.5^4 >= 0.05 > 0.5^5
    for _ in range(20):                           # the target keeps accepting whole chains ...
        chain = source.propose(context, threshold=0.05, room=10)
        source.update(chain, len(chain.tokens))
    trusted = source.propose(context, threshold=0.05, room=10)
    assert trusted.confidence > 0.9 and len(trusted.tokens) == 9   # ... so they grow to L
    assert source.propose(context, threshold=0.05, room=3).tokens == [4, 5, 6]   # the budget cuts
    assert source.confidence(1) == 0.5           # a 1-token match has its own, untouched estimate
    for _ in range(60):                           # ... and rejections shrink it to nothing
        source.update(source.propose(context, threshold=0.05, room=10), 0)
    assert source.propose(context, threshold=0.05, room=10).tokens == []
    assert accepted_on_chain([4, 5, 9], Chain([4, 5, 6], 3, 0.5)) == 2


def test_lookup_variant_in_benchmarks_and_validation():
    (variant,) = parse_methods("dynatree+lookup")
    assert variant.label == "dynatree+lookup" and variant.config["lookup"] == 10
    with pytest.raises(ValueError, match="lookup"):
        DynaTree(lookup=-1)


def test_the_default_method_is_dynatree_with_lookup(pair):
    target, draft = pair
    assert default_method() == DynaTree(lookup=10, measure_costs=True)   # DynaTree(): the paper's
    base = prompt(5, length=6)
    ids = torch.cat([base, base], dim=1)
    default = generate(target, draft, ids, max_new_tokens=24, eos_token_id=[])
    assert default.new_tokens == hf_greedy(target, ids, 24)
    assert len(default.stats.lookup_nodes) == default.stats.iterations
    assert default.stats.measured_costs is not None   # its controller priced its own timings
