"""Device-correctness without a GPU: with the default device set to "meta", any tensor the
library creates without an explicit device lands on "meta" and fails loudly when it meets
the models' CPU tensors. Everything a chapter calls runs here under that setting."""

from __future__ import annotations

import pytest
import torch
from tiny_models import prompt

from dynatree_lib import (
    Autoregressive,
    DynaTree,
    FixedTree,
    Linear,
    compare_with_autoregressive,
    generate,
    tree_logits_error,
)
from dynatree_lib.core.tree import TokenTree
from dynatree_lib.harness.compare import compare_methods
from dynatree_lib.harness.costs import forward_cost_curve
from dynatree_lib.models.pairs import ModelPair


@pytest.fixture
def meta_default():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def test_decoding_and_exactness_helpers_make_no_stray_tensors(pair, meta_default):
    target, draft = pair
    ids = prompt(1)
    for method in (Autoregressive(), Linear(k=3), FixedTree(depth=3, branch=2, threshold=0.01),
                   DynaTree(), DynaTree(lookup=4)):
        result = generate(target, draft, ids, method, 16, eos_token_id=[], trace=True)
        assert len(result.new_tokens) == 16
    tree = TokenTree.from_parents([5, 7, 9, 11], [-1, 0, 0, 1], device=target.device)
    assert tree.to(target.device).attention_bias(4, torch.float32).device.type == "cpu"
    assert tree_logits_error(target, ids, tree).max() < 1e-4
    assert compare_with_autoregressive(target, draft, ids, DynaTree(), 12, eos_token_id=[]).identical
    rows = compare_methods(target, draft, ids, [Linear(k=3), DynaTree()], 8, repeats=1)
    assert all(row.identical for row in rows)
    assert set(forward_cost_curve(target, sizes=(1, 2), prefix_len=8, repeats=1)) == {1, 2}


def test_benchmark_and_figures_make_no_stray_tensors(pair, meta_default):
    from dynatree_lib.book import viz
    from dynatree_lib.harness.bench import run_benchmark, spec

    target, draft = pair
    bench_pair = ModelPair(target, draft, None, "tiny", target.device, target.dtype)
    prompts = [prompt(s, length=8).tolist()[0] for s in range(2)]
    methods = [spec(k) for k in ("hf", "hf-assisted", "prompt-lookup", "linear", "dynatree")]
    doc = run_benchmark(bench_pair, prompts, methods, max_new_tokens=8, warmup=1, dataset="random",
                        progress=False)
    assert all(a["identical_to_ar"] for a in doc["aggregates"].values())
    trace = generate(target, draft, prompt(2), DynaTree(), 12, eos_token_id=[], trace=True).trace
    tree = TokenTree.from_parents(trace[0].tokens, trace[0].parents, device=target.device)
    for fig in (viz.tree_figure(trace[0]), viz.mask_figure(tree.ancestors),
                viz.tree_slider_figure({"a": trace[0], "b": trace[-1]}), viz.results_bar_figure(doc),
                viz.metric_dropdown_figure({"tiny": doc}), viz.time_breakdown_figure(doc)):
        assert fig.data
