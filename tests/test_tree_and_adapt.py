"""Unit behaviour of the tree tensors, the growth rules and the history controller."""

from __future__ import annotations

import torch
from tiny_models import prompt

from dynatree_lib import DynaTree, HistoryController, generate
from dynatree_lib.drafting import growth_rule
from dynatree_lib.tree import TokenTree


def test_tree_masks_positions_and_accepted_path():
    #        0
    #      /   \
    #     1     2
    #    / \     \
    #   3   4     5
    tree = TokenTree.from_parents([10, 11, 12, 13, 14, 15], [-1, 0, 0, 1, 1, 2], device="cpu")
    assert tree.depths.tolist() == [0, 1, 1, 2, 2, 2]
    assert tree.position_ids(7).tolist() == [[7, 8, 8, 9, 9, 9]]
    assert tree.ancestors[4].nonzero().flatten().tolist() == [0, 1, 4]
    bias = tree.attention_bias(3, torch.float32)[0, 0]
    visible = bias == 0
    assert visible.shape == (6, 9) and visible[:, :3].all()
    assert visible[5, 3:].nonzero().flatten().tolist() == [0, 2, 5]  # root, parent, self
    assert not visible[1, 3 + 2]  # siblings never see each other
    # target says: after 10 comes 11, after 11 comes 14, after 14 comes 99 (bonus)
    target_next = torch.tensor([11, 14, 0, 0, 99, 0])
    assert tree.accepted_path(target_next).tolist() == [0, 1, 4]
    assert tree.accepted_path(torch.tensor([42, 0, 0, 0, 0, 0])).tolist() == [0]


def test_dynatree_breadth_and_depth_gating():
    method = DynaTree(base_depth=2, max_depth=4, tau_high=0.8, tau_low=0.3, rho_stop=0.1, rho_deep=0.5)
    rule = growth_rule(method, HistoryController(method), depth_cap=100)
    widths = rule.breadth(torch.tensor([0.95, 0.8, 0.5, 0.3, 0.1]))
    assert widths.tolist() == [1, 1, 2, 2, 3]
    logp = torch.tensor([0.9, 0.4, 0.05]).log()
    assert rule.expands(1, logp).tolist() == [True, True, False]   # d < D_0: only rho_stop
    assert rule.expands(2, logp).tolist() == [True, False, False]  # d >= D_0: needs p > rho_deep
    assert rule.expands(4, logp).tolist() == [False, False, False]  # d = D_max
    assert growth_rule(method, HistoryController(method), depth_cap=1).max_depth == 1


def test_controller_deepens_on_success_and_backs_off_on_failure():
    method = DynaTree(base_depth=4, max_depth=8, target_acceptance=0.5)
    good = HistoryController(method)
    for _ in range(20):
        good.update(accepted_depth=6, drafted_depth=6)
    assert good.base_depth == 8 and good.tau_high < method.tau_high
    bad = HistoryController(method)
    for _ in range(20):
        bad.update(accepted_depth=0, drafted_depth=6)
    assert bad.base_depth == 1 and bad.tau_high == 0.99
    frozen = HistoryController(DynaTree(adapt=False))
    frozen.update(accepted_depth=5, drafted_depth=5)
    assert frozen.base_depth == 5 and not frozen.history


def test_controller_state_resets_per_call_unless_passed(pair):
    target, draft = pair
    method = DynaTree(base_depth=2, target_acceptance=0.3)
    first = generate(target, draft, prompt(4), method, 40, eos_token_id=[]).stats
    second = generate(target, draft, prompt(4), method, 40, eos_token_id=[]).stats
    assert first.base_depth[0] == second.base_depth[0] == 2.0
    kept = HistoryController(method)
    generate(target, draft, prompt(4), method, 40, eos_token_id=[], controller=kept)
    moved = kept.base_depth
    third = generate(target, draft, prompt(4), method, 40, eos_token_id=[], controller=kept).stats
    assert third.base_depth[0] == moved != 2.0
