"""Unit behaviour of the tree tensors, the growth rules and the history controller."""

from __future__ import annotations

import pytest
import torch
from tiny_models import prompt

from dynatree_lib import DynaTree, HistoryController, generate
from dynatree_lib.core.controller import best_depth, bound_shares
from dynatree_lib.core.growth import growth_rule
from dynatree_lib.core.tree import TokenTree


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
    method = DynaTree(base_depth=2, max_depth=4, theta_high=0.8, theta_low=0.3, rho_stop=0.1, rho_deep=0.5)
    rule = growth_rule(method, HistoryController(method), depth_cap=100)
    widths = rule.breadth(torch.tensor([0.95, 0.8, 0.5, 0.3, 0.1]))
    assert widths.tolist() == [1, 1, 2, 2, 3]
    logp = torch.tensor([0.9, 0.4, 0.05]).log()
    assert rule.expands(1, logp).tolist() == [True, True, False]   # d < D_0: only rho_stop
    assert rule.expands(2, logp).tolist() == [True, False, False]  # d >= D_0: needs p > rho_deep
    assert rule.expands(4, logp).tolist() == [False, False, False]  # d = D_max
    assert growth_rule(method, HistoryController(method), depth_cap=1).max_depth == 1


def test_paper_controller_integrates_towards_its_set_point_and_pins_when_unreachable():
    method = DynaTree(base_depth=4, max_depth=8, target_acceptance=0.5, controller="paper")
    good = HistoryController(method)
    for _ in range(20):
        good.update(accepted_depth=6, drafted_depth=6)
    assert good.base_depth == 8 and good.theta_high < method.theta_high
    bad = HistoryController(method)
    for _ in range(20):
        bad.update(accepted_depth=0, drafted_depth=6)
    assert bad.base_depth == 1 and bad.theta_high == 0.99
    # a constant acceptance below alpha* (the embedded pair's case) ends at the bounds
    stuck = HistoryController(DynaTree(controller="paper"))
    depths, taus = [], []
    for _ in range(40):
        depths.append(stuck.base_depth), taus.append(stuck.theta_high)
        stuck.update(accepted_depth=2, drafted_depth=5)
    assert bound_shares(depths, taus, stuck.config)["any"] > 0.75
    frozen = HistoryController(DynaTree(adapt=False))
    frozen.update(accepted_depth=5, drafted_depth=5)
    assert frozen.base_depth == 5 and not frozen.history


def test_best_depth_maximises_tokens_per_cost():
    for rate in (0.05, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99):
        for cost in (0.0, 0.06, 0.12, 0.3):
            values = [sum(rate ** i for i in range(d + 1)) / (1 + cost * d) for d in range(1, 9)]
            assert best_depth(rate, cost, 8) == 1 + values.index(max(values))
    depths = [best_depth(r / 100, 0.12, 8) for r in range(1, 100)]
    assert depths == sorted(depths) and depths[0] == 1 and depths[-1] == 8  # deeper as a grows
    assert best_depth(0.7, 0.3, 8) < best_depth(0.7, 0.06, 8)               # shallower as cost grows


@pytest.mark.parametrize("accepted", [2, 3, 4])
def test_goodput_controller_settles_inside_its_bounds_at_a_constant_acceptance(accepted):
    method = DynaTree()
    controller = HistoryController(method)
    depths, taus = [], []
    for _ in range(60):
        depths.append(controller.base_depth), taus.append(controller.theta_high)
        controller.update(accepted_depth=accepted, drafted_depth=5)
    # accepted of 5 levels: accepted + 1 attempted, so a -> accepted / (accepted + 1)
    assert controller.level_acceptance == pytest.approx(accepted / (accepted + 1), abs=0.01)
    expected = best_depth(accepted / (accepted + 1), method.draft_cost, method.max_depth)
    assert controller.base_depth == expected and 1 < expected < method.max_depth
    assert set(taus) == {method.theta_high}  # breadth stays the reader's: theta_high never moves
    assert bound_shares(depths[20:], taus[20:], method)["any"] == 0.0


def test_goodput_controller_follows_the_text_and_its_extremes_are_right():
    controller = HistoryController(DynaTree())
    for _ in range(20):
        controller.update(accepted_depth=2, drafted_depth=5)    # a = 2/3: three levels pay
    assert controller.base_depth == 3
    for _ in range(10):
        controller.update(accepted_depth=5, drafted_depth=5)    # an easy stretch: deeper
    assert controller.base_depth >= 5
    for _ in range(40):
        controller.update(accepted_depth=2, drafted_depth=5)
    assert controller.base_depth == 3                           # and back
    hopeless, perfect = HistoryController(DynaTree()), HistoryController(DynaTree())
    for _ in range(30):
        hopeless.update(accepted_depth=0, drafted_depth=3)
        perfect.update(accepted_depth=8, drafted_depth=8)
    assert hopeless.base_depth == 1 and perfect.base_depth == 8  # the bounds, where they are right
    cheap = HistoryController(DynaTree(draft_cost=0.01))
    for _ in range(20):
        cheap.update(accepted_depth=2, drafted_depth=5)
    assert cheap.base_depth > 3                                 # cheaper drafting: deeper trees


def test_bound_shares_count_each_bound():
    method = DynaTree(max_depth=6, theta_low=0.4)
    shares = bound_shares([1.0, 3.0, 6.0, 3.0], [0.9, 0.41, 0.99, 0.7], method)
    assert shares == {"depth_low": 0.25, "depth_high": 0.25, "theta_low": 0.25, "theta_high": 0.25,
                      "any": 0.75}
    assert bound_shares([], [], method)["any"] == 0.0


def test_controller_state_resets_per_call_unless_passed(pair):
    target, draft = pair
    method = DynaTree(base_depth=2, target_acceptance=0.3, controller="paper")
    first = generate(target, draft, prompt(4), method, 40, eos_token_id=[]).stats
    second = generate(target, draft, prompt(4), method, 40, eos_token_id=[]).stats
    assert first.base_depth[0] == second.base_depth[0] == 2.0
    kept = HistoryController(method)
    generate(target, draft, prompt(4), method, 40, eos_token_id=[], controller=kept)
    moved = kept.base_depth
    third = generate(target, draft, prompt(4), method, 40, eos_token_id=[], controller=kept).stats
    assert third.base_depth[0] == moved != 2.0


def test_the_stopwatch_charges_each_lap_to_its_phase(monkeypatch):
    import dynatree_lib.core.timing as timing

    ticks = iter([0.0, 0.0, 1.0, 3.0, 3.5, 6.0, 10.0])   # start, marks..., end
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    clock = timing.Stopwatch("cpu")
    clock.lap("draft")
    clock.lap("verify")
    clock.lap("draft")
    clock.lap("other")
    assert clock.totals() == {"draft": 1.0 + 0.5, "verify": 2.0, "other": 2.5, "total": 10.0}
