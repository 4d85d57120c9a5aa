"""The forward cost curve and the cost model."""

from __future__ import annotations

import pytest

from dynatree_lib.harness.costs import forward_cost_curve, predicted_speedup


def test_forward_cost_curve_restores_the_cache_and_times_every_size(pair):
    target, _ = pair
    curve = forward_cost_curve(target, sizes=(1, 4, 16), prefix_len=20, repeats=2)
    assert list(curve) == [1, 4, 16] and all(t > 0 for t in curve.values())


def test_predicted_speedup():
    assert predicted_speedup(tau=1.0, verify_cost=1.0, draft_forwards_per_iteration=0, draft_cost=0.1) == 1
    assert predicted_speedup(3.0, 1.5, 5, 0.1) == pytest.approx(1.5)


def test_cost_document_measures_default_and_packed_curves_in_one_run(pair, tmp_path):
    import copy
    import json

    from dynatree_lib.harness.costs import cost_document, curve_cost, read_costs
    from dynatree_lib.models.packing import packing_available
    from dynatree_lib.models.pairs import ModelPair

    target, draft = (copy.deepcopy(m) for m in pair)
    doc = cost_document(ModelPair(target, draft, None, "tiny", target.device, target.dtype),
                        sizes=(1, 2, 8), prefix_len=16, repeats=1)
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(doc))
    doc = read_costs(path)
    for role in ("target", "draft"):
        curves = doc["curves"][role]
        assert set(curves) == ({"default", "packed"} if packing_available(target) else {"default"})
        assert list(curves["default"]) == ["1", "2", "8"]
    curve = {"1": 1.0, "2": 2.0, "8": 5.0}
    assert curve_cost(curve, 1) == 1.0 and curve_cost(curve, 5) == pytest.approx(3.5)
    assert curve_cost(curve, 11) == pytest.approx(6.5)  # extrapolates the last segment
    path.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ValueError, match="not a valid dynatree-costs/1"):
        read_costs(path)
