"""Figures are built from real traces and results documents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from tiny_models import prompt

from dynatree_lib import FixedTree, generate
from dynatree_lib.bench import read_results
from dynatree_lib.costs import read_costs

go = pytest.importorskip("plotly.graph_objects")
viz = pytest.importorskip("dynatree_lib.viz")


def test_tree_layout_places_parents_between_children():
    xy = viz.tree_layout([-1, 0, 0, 1, 1])
    assert [x for x, _ in xy] == [0, 1, 1, 2, 2]
    assert xy[1][1] == (xy[3][1] + xy[4][1]) / 2


def test_tree_figure_highlights_the_accepted_path(pair):
    target, draft = pair
    trace = generate(target, draft, prompt(2), FixedTree(depth=3, branch=2, threshold=0.01), 12,
                     eos_token_id=[], trace=True).trace[0]
    fig = viz.tree_figure(trace)
    nodes = fig.data[-1]
    assert len(nodes.x) == len(trace.tokens)
    widths = list(nodes.marker.line.width)
    assert sum(w == 3 for w in widths) == len(trace.accepted_path)
    red_edges = [t for t in fig.data[:-1] if t.line.color == viz.ACCEPTED]
    assert len(red_edges) == len(trace.accepted_path) - 1


def test_tree_slider_figure_shows_one_tree_per_step(pair):
    target, draft = pair
    traces = {f"D={d}": generate(target, draft, prompt(2), FixedTree(depth=d, branch=2, threshold=0.01), 8,
                                 eos_token_id=[], trace=True).trace[0] for d in (1, 3)}
    fig = viz.tree_slider_figure(traces, slider_title="depth")
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["D=1", "D=3"]
    first = steps[0].args[0]["visible"]
    assert sum(first) == sum(1 for t in fig.data if t.visible is not False)
    assert first != steps[1].args[0]["visible"]


def test_control_panel_runs_the_decoder(pair):
    pytest.importorskip("ipywidgets")
    from dynatree_lib.models import ModelPair
    from dynatree_lib.widgets import ControlPanel

    class Chars:
        def __call__(self, text):
            return type("E", (), {"input_ids": [ord(c) % 90 for c in text]})()

        def decode(self, ids):
            return "".join(chr(32 + i % 90) for i in ids)

    target, draft = pair
    panel = ControlPanel(ModelPair(target, draft, Chars(), "tiny", target.device, target.dtype),
                         prompt="hello", max_new_tokens=8)
    for method in ("dynatree", "fixed", "linear"):
        panel.method.value = method
        summary = panel.run()
        assert summary["identical_to_ar"] and summary["tau"] >= 1
    panel.method.value = "dynatree"
    from dataclasses import fields

    from dynatree_lib import DynaTree

    assert set(panel.knobs["dynatree"]) == {f.name for f in fields(DynaTree)}  # every knob, B_min to lookup
    panel.knobs["dynatree"]["lookup"].value = 4
    panel.knobs["dynatree"]["adapt"].value = False
    assert panel.run()["identical_to_ar"]
    panel.knobs["dynatree"]["tau_high"].value, panel.knobs["dynatree"]["tau_low"].value = 0.3, 0.9
    assert "tau_low" in panel.run()["error"]  # said, not silently clipped


# ---- results chapters: the figures read the committed results/*.json --------------------------

RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_run_description_names_machine_pair_and_command():
    doc = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    text = viz.run_description(doc)
    assert doc["protocol"]["command"] in text and doc["environment"]["device_name"] in text
    assert text.startswith(f"embedded pair (draft {doc['pair']['draft']}) on ")
    assert doc["pair"]["draft"].startswith("embedded_draft.pt@")
    # files written before drafts were named hold the draft's class name: no draft shown
    unnamed = {**doc, "pair": {**doc["pair"], "draft": "ShortlistLlamaForCausalLM"}}
    assert viz.run_description(unnamed).startswith("embedded pair on ")


def test_metric_dropdown_switches_metric_and_axis():
    docs = {name: read_results(RESULTS / f"main_{name}_embedded_cpu.json") for name in ("wikitext2", "pg19")}
    fig = viz.metric_dropdown_figure(docs, ("speedup", "tau"))
    assert len(fig.data) == 4 and [t.visible for t in fig.data] == [True, True, False, False]
    tau_button = fig.layout.updatemenus[0].buttons[1]
    assert tau_button.args[0]["visible"] == [False, False, True, True]
    assert tau_button.args[1]["yaxis"]["title"] == "tau"
    wikitext_tau = list(fig.data[2].y)
    assert wikitext_tau == [a["tau"]["mean"] for a in docs["wikitext2"]["aggregates"].values()]


def test_results_frame_flags_mismatches():
    doc = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    assert set(viz.results_frame(doc)["exact"]) == {"yes"}
    broken = copy.deepcopy(doc)
    broken["aggregates"]["linear@model"].update(identical_to_ar=False, mismatches=2)
    assert viz.results_frame(broken).loc["linear@model", "exact"] == "NO (2)"


def test_cost_model_uses_measured_curves_and_counts():
    doc = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    costs = read_costs(RESULTS / "costs_embedded_cpu.json")
    rows = {r["method"]: r for r in viz.predicted_vs_measured(doc, costs)}
    assert "ar" not in rows and {"dynatree@model", "dynatree@head"} <= set(rows)
    for label in ("dynatree@model", "dynatree@head"):
        a, row = doc["aggregates"][label], rows[label]
        assert row["measured"] == a["speedup"]["mean"]
        assert row["tokens_per_iteration"] == pytest.approx(128 / a["iterations"]["mean"])
        # r(n) is read off the measured packed curve, so it lies within the curve's range (on this
        # CPU a packed forward over a few tokens has measured faster than over one: r(n) < 1)
        curve = costs["curves"]["target"]["packed"]
        ratios = [t / curve["1"] for t in curve.values()]
        assert min(ratios) - 1e-9 <= row["verify_cost"] <= max(ratios) + 1e-9
        assert 0 < row["predicted"] < row["tokens_per_iteration"]


def test_scaling_figure_orders_the_grid_by_value():
    length = [read_results(p) for p in RESULTS.glob("scaling_length_wikitext2_embedded_cpu_T*.json")]
    prompt = [read_results(p) for p in RESULTS.glob("scaling_prompt_wikitext2_embedded_cpu_P*.json")]
    fig = viz.scaling_figure(length, prompt)
    methods = len(length[0]["aggregates"])
    assert len(fig.data) == 4 * methods  # throughput and speedup against T and against prompt length
    assert list(fig.data[0].x) == sorted(d["protocol"]["max_new_tokens"] for d in length)
    prompt_x = list(fig.data[2 * methods].x)  # first trace of the prompt-length column
    assert prompt_x == sorted(viz.mean_prompt_tokens(d) for d in prompt)
    caps = [d["protocol"]["max_prompt_tokens"] for d in sorted(prompt, key=viz.mean_prompt_tokens)]
    assert all(x <= cap for x, cap in zip(prompt_x, caps, strict=True))  # a prompt never exceeds its cap


def test_sensitivity_and_breakdown_figures_cover_every_configuration():
    sens = read_results(RESULTS / "sensitivity_wikitext2_embedded_cpu.json")
    fig = viz.sensitivity_figure(sens)
    plotted = [label for trace in fig.data for label in trace.text]
    assert sorted(plotted) == sorted(m for m in sens["aggregates"] if m != "ar")
    assert [trace.name for trace in fig.data] == ["default", "thresholds", "breadth", "depth"]
    main = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    breakdown = viz.time_breakdown_figure(main)
    assert [t.name for t in breakdown.data] == ["draft", "verify (target)", "bookkeeping"]
    draft_ms = dict(zip(breakdown.data[0].x, breakdown.data[0].y, strict=True))
    # AR is the reference bar: no drafting
    assert draft_ms["ar"] == 0 and draft_ms["dynatree@model"] > 0 and draft_ms["dynatree@head"] > 0
