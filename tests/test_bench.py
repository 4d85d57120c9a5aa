"""The benchmark harness on tiny models: every method in one run, exactness recorded, schema enforced."""

from __future__ import annotations

import copy
import json

import pytest
from tiny_models import prompt

from dynatree_lib.harness.bench import (
    format_table,
    read_results,
    run_benchmark,
    spec,
    validate,
    write_results,
)
from dynatree_lib.models.pairs import ModelPair


@pytest.fixture(scope="module")
def doc(pair):
    target, draft = pair
    bench_pair = ModelPair(target, draft, None, "tiny", target.device, target.dtype)
    prompts = [prompt(s, length=10).tolist()[0] for s in range(3)]
    methods = [spec(k) for k in ("hf", "hf-assisted", "prompt-lookup", "linear")] + [
        spec("fixed", depth=3, branch=2, threshold=0.01), spec("dynatree")]
    return run_benchmark(bench_pair, prompts, methods, max_new_tokens=16, warmup=1, dataset="random",
                         progress=False)


def test_all_methods_in_one_run_are_exact(doc):
    labels = [m["label"] for m in doc["methods"]]
    assert labels == ["ar", "hf", "hf-assisted", "prompt-lookup", "linear", "fixed", "dynatree"]
    assert len(doc["records"]) == 2 * len(labels)  # 3 prompts, 1 warm-up discarded
    for label, agg in doc["aggregates"].items():
        assert agg["identical_to_ar"], label
        assert agg["speedup"]["mean"] > 0 and agg["prompts"] == 2
    ar = doc["aggregates"]["ar"]
    assert ar["tau"]["mean"] == 1.0 and ar["speedup"]["mean"] == 1.0
    assert doc["aggregates"]["dynatree"]["tau"]["mean"] > 1.0
    assert doc["aggregates"]["hf-assisted"]["draft_forwards"]["mean"] > 0
    assert "dynatree" in format_table(doc)


def test_results_roundtrip_and_schema_errors(doc, tmp_path):
    path = write_results(doc, tmp_path / "r.json")
    assert read_results(path)["records"] == json.loads(json.dumps(doc["records"]))
    broken = copy.deepcopy(doc)
    del broken["environment"]["torch"]
    with pytest.raises(ValueError, match="environment: 'torch' is a required property"):
        validate(broken)
    broken = copy.deepcopy(doc)
    broken["records"][0]["method"] = "nope"
    with pytest.raises(ValueError, match="unknown method"):
        validate(broken)
    broken = copy.deepcopy(doc)
    broken["records"][1]["verdict"] = "close enough"
    with pytest.raises(ValueError, match="records/1/verdict"):
        validate(broken)
    broken = copy.deepcopy(doc)
    broken["schema"] = "dynatree-bench/1"
    with pytest.raises(ValueError, match="expected 'dynatree-bench/2'"):
        validate(broken)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_results(tmp_path / "bad.json")


def test_mismatch_is_reported_not_averaged(pair, capsys):
    target, draft = pair
    bench_pair = ModelPair(target, draft, None, "tiny", target.device, target.dtype)
    methods = [spec("linear", label="short", k=2)]
    import dynatree_lib.harness.bench as bench

    real = bench.run_method

    def corrupt(method, *args, **kwargs):
        record = real(method, *args, **kwargs)
        if method.label == "short":
            record["tokens"] = record["tokens"][:-1] + [record["tokens"][-1] + 1]
        return record

    bench.run_method = corrupt
    try:
        doc = run_benchmark(bench_pair, [prompt(1).tolist()[0]] * 2, methods, 8, warmup=1, progress=False)
    finally:
        bench.run_method = real
    short = doc["aggregates"]["short"]
    assert short["mismatches"] == 1 and not short["identical_to_ar"] and short["near_ties"] == 0
    assert [r["verdict"] for r in doc["records"] if r["method"] == "short"] == ["mismatch"]
    assert "differs from greedy AR" in capsys.readouterr().err


def test_unknown_method_and_bad_protocol(pair):
    with pytest.raises(ValueError, match="unknown method"):
        spec("medusa")
    with pytest.raises(ValueError, match="k must be >= 1"):
        spec("linear", k=0)
    target, draft = pair
    bench_pair = ModelPair(target, draft, None, "tiny", target.device, target.dtype)
    with pytest.raises(ValueError, match="more prompts"):
        run_benchmark(bench_pair, [[1, 2, 3]], [spec("dynatree")], 4, warmup=1, progress=False)


def _paired_doc(a_values, b_values):
    records = [{"prompt_index": i, "method": m, "speedup": v}
               for m, values in (("a", a_values), ("b", b_values)) for i, v in enumerate(values)]
    return {"records": records}


def test_paired_difference_tells_a_win_from_noise():
    from dynatree_lib.harness.paired import describe, paired_difference

    win = paired_difference(_paired_doc([1.5, 1.6, 1.4, 1.55], [1.2, 1.3, 1.1, 1.25]), "a", "b")
    assert win["verdict"] == "a" and win["low"] > 0 and win["mean"] == pytest.approx(0.3)
    # same means, but the per-prompt differences change sign: within noise
    noise = paired_difference(_paired_doc([1.5, 1.0, 1.6, 0.9], [1.0, 1.5, 0.9, 1.6]), "a", "b")
    assert noise["verdict"] == "within noise" and noise["low"] < 0 < noise["high"]
    lose = paired_difference(_paired_doc([1.0, 1.1, 0.9], [1.4, 1.5, 1.3]), "a", "b")
    assert lose["verdict"] == "b" and "b wins" in describe(lose, "a", "b")
    assert paired_difference(_paired_doc([1.5, 1.0, 1.6, 0.9], [1.0, 1.5, 0.9, 1.6]), "a", "b") == noise
    with pytest.raises(ValueError, match="two or more"):
        paired_difference(_paired_doc([1.0], [1.1]), "a", "b")


def test_self_repetition_and_copy_rate():
    from dynatree_lib.harness.repetition import copy_rate, self_repetition

    assert self_repetition([1, 2, 3, 4, 5, 6]) == 0.0
    loop = [7, 8, 9] * 4                      # 10 trigrams, the first 3 fresh
    assert self_repetition(loop) == pytest.approx(7 / 10)
    assert self_repetition([1, 2]) is None
    assert copy_rate([1, 2, 3, 4], [2, 3, 4, 9]) == pytest.approx(1 / 2)
    assert copy_rate([1, 2, 3], [5]) is None


def test_a_pair_holds_any_number_of_named_drafters(pair):
    """The harness iterates over the pair's drafters by name: a third one needs no code."""
    from tiny_models import noisy_copy

    from dynatree_lib.harness.bench import parse_methods

    target, draft = pair
    other = noisy_copy(target, 0.05, seed=7)
    bench_pair = ModelPair(target, draft, None, "tiny", target.device, target.dtype,
                           drafters={"noisier": other}, default_drafter="noisier")
    methods = parse_methods("dynatree,dynatree@model,dynatree@noisier")
    doc = run_benchmark(bench_pair, [prompt(s, length=10).tolist()[0] for s in range(2)], methods,
                        max_new_tokens=12, warmup=1, progress=False)
    assert {r["method"]: r["drafter"] for r in doc["records"]} == {
        "ar": None, "dynatree": "noisier", "dynatree@model": "model", "dynatree@noisier": "noisier"}
    assert all(a["identical_to_ar"] for a in doc["aggregates"].values())
    assert set(doc["pair"]["drafters"]) == {"model", "noisier"}
    assert doc["pair"]["default_drafter"] == "noisier"
    with pytest.raises(ValueError, match="no drafter 'missing'"):
        run_benchmark(bench_pair, [prompt(0).tolist()[0]] * 2, parse_methods("dynatree@missing"), 4,
                      warmup=1, progress=False)


def test_leave_one_out_variants_each_change_one_rule_of_the_default(pair):
    """Each ``default-<rule>`` is the default method with exactly that rule (or source) removed,
    and each decodes exactly."""
    from dynatree_lib.harness.bench import LEAVE_ONE_OUT, VARIANTS, parse_methods

    (default,) = parse_methods("default@model")
    assert VARIANTS["default"][0] == "dynatree"
    for name, change in LEAVE_ONE_OUT.items():
        (method,) = parse_methods(f"{name}@model")
        differs = {k for k, v in method.config.items() if default.config.get(k) != v}
        assert differs and differs <= set(change), name
    methods = parse_methods(",".join(LEAVE_ONE_OUT))
    target, draft = pair
    bench_pair = ModelPair(target, draft, None, "tiny", target.device, target.dtype)
    doc = run_benchmark(bench_pair, [prompt(s, length=10).tolist()[0] for s in range(2)], methods,
                        max_new_tokens=16, warmup=1, progress=False)
    assert all(a["identical_to_ar"] for a in doc["aggregates"].values())
