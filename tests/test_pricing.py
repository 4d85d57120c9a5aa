"""A controller priced from measured costs (DynaTree(measure_costs=True)): the meter on fake
timings, the controller's choices from its prices, and the loop end to end on a fake clock."""

from __future__ import annotations

import pytest
from tiny_models import hf_greedy, prompt

from dynatree_lib import DynaTree, generate
from dynatree_lib.core.controller import HistoryController, best_depth
from dynatree_lib.core.pricing import THRESHOLD_FLOOR, CostMeter
from dynatree_lib.core.timing import Stopwatch


def test_the_meter_reads_the_verify_line_and_the_draft_cost():
    meter = CostMeter()
    assert meter.prices() is None
    for n in (2, 9, 4, 14, 6, 3, 11):   # t(n) = 10 ms + 2 ms per position; a draft forward 3 ms
        meter.observe(n, 0.010 + 0.002 * n, draft_forwards=2, draft_seconds=0.006)
    beta, kappa = meter.prices()
    assert beta == pytest.approx(0.003 / 0.012) and kappa == pytest.approx(0.002 / 0.012)


def test_without_varied_tree_sizes_there_is_no_slope_to_read():
    meter = CostMeter()
    for _ in range(10):
        meter.observe(5, 0.02, 1, 0.001)
    assert meter.verify_line() is None and meter.prices() is None


def test_expensive_positions_give_shallower_trees_and_a_higher_threshold():
    def controller(per_position: float) -> HistoryController:
        """Levels accepted with probability 0.75; a step of 10 ms, a draft forward 0.6 ms,
        ``per_position`` seconds per verified position, trees of 2 nodes per level."""
        c = HistoryController(DynaTree(measure_costs=True))
        for i in range(12):
            positions = 3 + 2 * (i % 4)
            c.observe_costs(positions, 0.010 - per_position + per_position * positions, 2, 0.0012,
                            nodes=4, depth=2)
            c.update(3, 4)
        return c

    free, costly = controller(0.0), controller(0.0015)
    assert free.node_cost == pytest.approx(0.0, abs=1e-9) and costly.node_cost == pytest.approx(0.15)
    assert free.level_cost == pytest.approx(0.06) and costly.level_cost == pytest.approx(0.36)
    assert costly.depth < free.depth
    assert free.depth == best_depth(free.level_acceptance, 0.06, 8)   # kappa = 0: the unpriced rule
    assert free.threshold == THRESHOLD_FLOOR    # free positions: prune only at the floor
    assert costly.threshold > DynaTree().threshold > THRESHOLD_FLOOR
    unpruned = HistoryController(DynaTree(measure_costs=True, threshold=0.0))
    for i in range(12):
        unpruned.observe_costs(3 + 2 * (i % 4), 0.01 + 0.0015 * i, 2, 0.0012, nodes=4, depth=2)
        unpruned.update(3, 4)
    assert unpruned.meter.prices() is not None and unpruned.threshold == 0.0   # pruning stays off
    fixed = HistoryController(DynaTree())       # not priced: nothing measured, epsilon stays
    fixed.observe_costs(7, 0.1, 2, 0.01, 6, 3)
    fixed.update(1, 3)
    assert fixed.meter is None and fixed.draft_cost == DynaTree().draft_cost
    assert fixed.threshold == DynaTree().threshold


@pytest.mark.parametrize("per_position", [0.0, 0.02])
def test_the_loop_prices_its_own_timings(pair, monkeypatch, per_position):
    """Fake timings: verification costs 10 ms + ``per_position`` s per position, a draft forward
    1 ms. The controller measures exactly that and prices with it; the output stays the target's."""
    target, draft = pair
    observe = HistoryController.observe_costs
    sizes: list[int] = []

    def fake(self, positions, verify_seconds, forwards, draft_seconds, nodes, depth):
        assert verify_seconds >= 0 and draft_seconds >= 0   # the loop's own laps, replaced below
        sizes.append(positions)
        return observe(self, positions, 0.010 + per_position * positions, forwards, 0.001 * forwards,
                       nodes, depth)

    monkeypatch.setattr(HistoryController, "observe_costs", fake)
    ids = prompt(7, length=10)
    result = generate(target, draft, ids, DynaTree(measure_costs=True, rho_stop=0.01), 40, eos_token_id=[])
    assert result.new_tokens == hf_greedy(target, ids, 40)
    s = result.stats
    assert s.target_forwards == s.iterations + 1 and len(sizes) == s.iterations
    assert len(set(sizes)) > 1   # trees of several sizes: the slope is readable
    step = 0.010 + per_position
    assert s.measured_costs["node_cost"] == pytest.approx(per_position / step, abs=1e-9)
    assert s.measured_costs["draft_cost"] == pytest.approx(0.001 / step, rel=1e-6)
    assert s.threshold[0] == DynaTree().threshold   # epsilon until the prices are measured
    if per_position:
        assert max(s.threshold) > DynaTree().threshold   # costly positions raised the bar
    else:
        assert s.threshold[-1] == THRESHOLD_FLOOR         # free positions: only the floor


def test_measure_costs_is_checked():
    with pytest.raises(ValueError, match="measure_costs"):
        DynaTree(measure_costs=1)


def test_a_stopwatch_reads_its_latest_lap_of_a_phase():
    clock = Stopwatch("cpu")
    clock.lap("draft")
    clock.lap("verify")
    clock.lap("draft")
    assert clock.last("draft") == clock.marks[3][1] - clock.marks[2][1]
    assert clock.last("verify") == clock.marks[2][1] - clock.marks[1][1]
    assert clock.last("prefill") == 0.0
