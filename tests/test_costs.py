"""The forward cost curve and the cost model."""

from __future__ import annotations

import pytest

from dynatree_lib.costs import forward_cost_curve, predicted_speedup


def test_forward_cost_curve_restores_the_cache_and_times_every_size(pair):
    target, _ = pair
    curve = forward_cost_curve(target, sizes=(1, 4, 16), prefix_len=20, repeats=2)
    assert list(curve) == [1, 4, 16] and all(t > 0 for t in curve.values())


def test_predicted_speedup():
    assert predicted_speedup(tau=1.0, verify_cost=1.0, draft_forwards_per_iteration=0, draft_cost=0.1) == 1
    assert predicted_speedup(3.0, 1.5, 5, 0.1) == pytest.approx(1.5)
