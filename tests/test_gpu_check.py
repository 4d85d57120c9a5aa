"""The GPU check's dry run: the same code path on the CPU with tiny models (a GPU session
must not be the first to run it)."""

from __future__ import annotations

import json

from dynatree_lib.cli import main
from dynatree_lib.harness.schema import validate


def test_gpu_check_dry_run_writes_a_valid_passing_file(tmp_path, capsys):
    main(["gpu-check", "--dry-run", "--results-dir", str(tmp_path)])
    doc = validate(json.loads((tmp_path / "gpu_check_dry-run.json").read_text()))
    assert doc["dry_run"] and doc["passed"]
    assert {row["dtype"] for row in doc["exactness"]} == {"float32", "float16", "bfloat16"}
    assert all(row["mismatch"] == 0 for row in doc["exactness"])
    assert sum(doc["split"][v] for v in ("identical", "near-tie", "mismatch")) > 0
    curve = doc["costs"]["target_curve"]
    assert list(curve) == ["1", "2", "4", "8", "16", "32", "64", "128", "256"]
    assert 0 < doc["costs"]["draft_cost_ratio"]
    assert doc["sharded"]["passed"] and doc["sharded"]["identical_to_unsharded"]   # two gloo processes
    reads = {row["method"]: row["per_iteration"] for row in doc["host_reads"]}
    assert set(reads) == {"Autoregressive()", "Linear(k=4)", "FixedTree(4, 2, 0.01)", "DynaTree()"}
    assert 1 <= reads["Autoregressive()"] < 2   # one read per token: the next token's id
    assert "PASSED" in capsys.readouterr().out


def test_gpu_check_without_a_gpu_says_what_to_do(monkeypatch):
    import pytest
    import torch

    from dynatree_lib.harness.gpu_check import run_gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="--dry-run"):
        run_gpu_check("cpu", dry_run=False)
