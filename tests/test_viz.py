"""Figures are built from real traces and results documents."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from tiny_models import prompt

from dynatree_lib import DynaTree, FixedTree, generate
from dynatree_lib.harness.bench import read_results
from dynatree_lib.harness.costs import predicted_vs_measured, read_costs

go = pytest.importorskip("plotly.graph_objects")
viz = pytest.importorskip("dynatree_lib.book.viz")


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
    # colour = log10 p(path) (floored), the colour bar labelled as probabilities
    assert list(nodes.marker.color) == pytest.approx(
        [max(math.log10(p), -viz.PROB_DECADES) for p in trace.path_prob])
    assert list(nodes.marker.colorbar.ticktext)[:3] == ["1", "0.1", "0.01"]
    assert f"p(path) = {trace.path_prob[1]:.3g}" in nodes.hovertext[1]  # the plain probability


def test_tree_slider_figure_shows_one_tree_per_step(pair):
    target, draft = pair
    traces = {f"D={d}": generate(target, draft, prompt(2), FixedTree(depth=d, branch=2, threshold=0.01), 8,
                                 eos_token_id=[], trace=True).trace[0] for d in (1, 3)}
    fig = viz.tree_slider_figure(traces, slider_title="depth", details={"D=1": "tau 1.5", "D=3": "tau 2.0"})
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["D=1", "D=3"]
    first = steps[0].args[0]["visible"]
    assert sum(first) == sum(1 for t in fig.data if t.visible is not False)
    assert first != steps[1].args[0]["visible"]
    # each step sets title.text (plotly.js 3 drops a plain-string title and it vanishes)
    for step in steps:
        title = step.args[1]["title.text"]
        assert step.label in title and "tau" in title
    assert fig.layout.title.text == steps[0].args[1]["title.text"]


def test_control_panel_runs_the_decoder(pair):
    pytest.importorskip("ipywidgets")
    from dynatree_lib.book.widgets import ControlPanel
    from dynatree_lib.models.pairs import ModelPair

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
        # the bar ends full after the AR reference, the status line says what was done
        assert panel.bar.value == panel.bar.max == 8 and panel.status.value.startswith("done: 8 tokens")
        assert not panel.button.disabled
    panel.method.value = "dynatree"
    from dataclasses import fields

    from dynatree_lib import DynaTree

    assert set(panel.knobs["dynatree"]) == {f.name for f in fields(DynaTree)}  # every knob, B_min to lookup
    panel.knobs["dynatree"]["lookup"].value = 4
    panel.knobs["dynatree"]["adapt"].value = False
    assert panel.run()["identical_to_ar"]
    panel.knobs["dynatree"]["theta_high"].value, panel.knobs["dynatree"]["theta_low"].value = 0.3, 0.9
    assert "theta_low" in panel.run()["error"]  # said, not silently clipped
    hints = [c.value for c in panel.widget.children if type(c).__name__ == "HTML"]
    assert any("live kernel" in h and "static site" in h for h in hints)  # Run does nothing there


# ---- the static explorer ------------------------------------------------------------------------

def _tree(nodes: int, accepted: int) -> dict:
    """A chain of ``nodes`` draft nodes after the root, the first ``accepted`` of them accepted."""
    n = nodes + 1
    return {"tokens": list(range(n)), "text": [f"t{i}" for i in range(n)], "parents": list(range(-1, n - 1)),
            "depths": list(range(n)), "path_prob": [0.5 ** i for i in range(n)],
            "accepted_path": list(range(accepted + 1)), "committed": list(range(accepted + 1)),
            "prefix_len": 4}


def _explorer_doc(trees) -> dict:
    """An ``explore`` document over a small grid; ``trees(config)`` gives each setting's trees."""
    import itertools

    methods, aggregates, stored = [], {}, {}
    for depth, branch, theta_high, eps in itertools.product((3, 8), (1, 3), (0.5, 0.9), (0.02, 0.1)):
        config = {"max_depth": depth, "max_branch": branch, "theta_high": theta_high, "threshold": eps}
        label = f"D{depth} B{branch} t{theta_high} e{eps}"
        methods.append({"label": label, "kind": "dynatree", "config": config})
        aggregates[label] = {k: {"mean": 1.5, "std": 0.1} for k in
                             ("tau", "speedup", "acceptance_rate", "mean_tree_size")}
        stored[label] = trees(config)
    return {"methods": [{"label": "ar", "kind": "ar", "config": {}}, *methods], "trees": stored,
            "aggregates": {"ar": {}, **aggregates}}


def _opening(html: str) -> tuple[dict, dict]:
    """The explorer's data and the option each menu opens on."""
    import json
    import re

    data = json.loads(re.search(r"const data = (\{.*?\});\n", html).group(1))
    chosen = {key: re.search(r'value="([^"]+)" selected', options).group(1)
              for key, options in re.findall(r'<select data-key="(\w+)">(.*?)</select>', html)}
    return data, chosen


def test_explorer_opens_on_the_default_setting_at_a_tree_that_accepts():
    import re

    # the first tree is empty, the second accepts one token, the third accepts two
    html = viz.explorer_html(_explorer_doc(lambda _: [_tree(0, 0), _tree(3, 1), _tree(3, 2), _tree(4, 4)]))
    data, chosen = _opening(html)
    assert set(chosen) == {"max_depth", "max_branch", "theta_high", "threshold", "iteration"}
    assert len(data["settings"]["8|3|0.9|0.02"]["trees"]) == 4
    assert re.search(r'<select data-key="iteration">(.*?)</select>', html).group(1).count("<option") == 4
    # DynaTree's D_max, B_max, θ_high; its ε = 0.05 is not in the grid: the grid's first
    assert chosen == {"max_depth": "8", "max_branch": "3", "theta_high": "0.9", "threshold": "0.02",
                      "iteration": "2"}
    tree = data["settings"]["8|3|0.9|0.02"]["trees"][int(chosen["iteration"])]
    assert tree["nodes"] >= 2 and tree["accepted_n"] >= 2
    assert data["cmin"] == -viz.PROB_DECADES and tree["color"][1] == pytest.approx(math.log10(0.5))


def test_explorer_falls_back_when_the_default_setting_never_accepts():
    # the default setting accepts one token at most: it still opens there
    _, chosen = _opening(viz.explorer_html(_explorer_doc(lambda _: [_tree(0, 0), _tree(3, 1)])))
    assert chosen["max_depth"] == "8" and chosen["iteration"] == "1"
    # only D_max = 3 settings accept: the page opens on the first of them
    html = viz.explorer_html(_explorer_doc(
        lambda config: [_tree(0, 0), _tree(2, 2 if config["max_depth"] == 3 else 0)]))
    _, chosen = _opening(html)
    assert chosen == {"max_depth": "3", "max_branch": "1", "theta_high": "0.5", "threshold": "0.02",
                      "iteration": "1"}
    # no tree accepts two tokens anywhere: the default setting's first tree, no error
    _, chosen = _opening(viz.explorer_html(_explorer_doc(lambda _: [_tree(1, 0)])))
    assert chosen == {"max_depth": "8", "max_branch": "3", "theta_high": "0.9", "threshold": "0.02",
                      "iteration": "0"}


def test_explorer_reads_the_committed_file():
    doc = read_results(RESULTS / "explorer_wikitext2_embedded_cpu.json")  # may hold only 3 iterations
    data, chosen = _opening(viz.explorer_html(doc))
    key = "|".join(chosen[k] for k in ("max_depth", "max_branch", "theta_high", "threshold"))
    tree = data["settings"][key]["trees"][int(chosen["iteration"])]
    assert tree["nodes"] >= 2 and tree["accepted_n"] >= 1
    # DynaTree's defaults, or the grid's values nearest to them: a tree of theirs accepts here
    default, grid = DynaTree(), doc["grid"]
    assert key == "|".join(f"{min(grid[k], key=lambda v, k=k: abs(v - getattr(default, k))):g}"
                           for k in ("max_depth", "max_branch", "theta_high", "threshold"))


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
    assert tau_button.args[1]["yaxis"]["title"] == "τ"
    wikitext_tau = list(fig.data[2].y)
    assert wikitext_tau == [a["tau"]["mean"] for a in docs["wikitext2"]["aggregates"].values()]


def test_results_frame_flags_mismatches():
    doc = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    assert set(viz.results_frame(doc)["exact"]) == {"yes"}
    broken = copy.deepcopy(doc)
    broken["aggregates"]["linear@model"].update(identical_to_ar=False, mismatches=2)
    assert viz.results_frame(broken).loc["linear@model", "exact"] == "NO (2)"
    broken["aggregates"]["linear@model"].update(mismatches=0, near_ties=3)  # half precision
    assert viz.results_frame(broken).loc["linear@model", "exact"] == "tie (3)"
    broken["aggregates"]["linear@model"].update(identical_to_ar=None)  # sampled: no reference
    assert viz.results_frame(broken).loc["linear@model", "exact"] == "n/a"


def test_cost_model_uses_measured_curves_and_counts():
    doc = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    costs = read_costs(RESULTS / "costs_embedded_cpu.json")
    rows = {r["method"]: r for r in predicted_vs_measured(doc, costs)}
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
    speedup = [trace for trace in fig.data if trace.showlegend]  # the left panel, one bar trace per group
    plotted = [label for trace in speedup for label in trace.y]  # labels on the y axis: no overprint
    assert sorted(plotted) == sorted(m for m in sens["aggregates"] if m != "ar")
    assert [trace.name for trace in speedup] == ["default", "thresholds", "breadth", "depth"]
    assert all(trace.orientation == "h" and trace.text is None for trace in fig.data)
    main = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    breakdown = viz.time_breakdown_figure(main)
    assert [t.name for t in breakdown.data] == ["draft", "verify (target)", "bookkeeping"]
    draft_ms = dict(zip(breakdown.data[0].x, breakdown.data[0].y, strict=True))
    # AR is the reference bar: no drafting
    assert draft_ms["ar"] == 0 and draft_ms["dynatree@model"] > 0 and draft_ms["dynatree@head"] > 0


def test_spec_bench_figure_shows_one_task_group_at_a_time():
    doc = read_results(RESULTS / "spec_bench_embedded_cpu.json")
    fig = viz.spec_bench_figure(doc)
    buttons = fig.layout.updatemenus[0].buttons
    assert buttons[0].label == "Overall" and len(buttons) == len(doc["groups"])
    assert [t.visible for t in fig.data[:2]] == [True, True] and not any(t.visible for t in fig.data[2:])
    assert list(fig.data[0].y) == list(doc["aggregates"])  # methods on the y axis
    assert list(fig.data[0].x) == [doc["groups"]["overall"][m]["speedup"] for m in doc["aggregates"]]
    second = buttons[1].args[0]["visible"]
    assert second[2:4] == [True, True] and sum(second) == 2
    assert buttons[1].label in buttons[1].args[1]["title.text"]


def test_cost_model_figure_names_points_in_hover_and_legend_only():
    doc = read_results(RESULTS / "main_wikitext2_embedded_cpu.json")
    rows = predicted_vs_measured(doc, read_costs(RESULTS / "costs_embedded_cpu.json"))
    fig = viz.cost_model_figure(rows)
    assert [t.name for t in fig.data[1:]] == [r["method"] for r in rows]
    assert all("text" not in t.mode for t in fig.data)


def test_adaptation_figure_splits_every_committed_token_by_source(pair):
    import torch

    from dynatree_lib import default_method
    from dynatree_lib.book.viz import SOURCES, adaptation_figure, token_sources

    target, draft = pair
    base = prompt(4, length=8)
    ids = torch.cat([base, base], dim=1)   # something for the lookup to copy
    result = generate(target, draft, ids, default_method(), 32, eos_token_id=[], trace=True)
    rows = token_sources(result.stats)
    per_iteration = [sum(counts) for counts in zip(*rows.values(), strict=True)]
    assert per_iteration == result.stats.committed   # each token once: draft, both, lookup or bonus
    assert all(count >= 0 for counts in rows.values() for count in counts)
    assert sum(rows["target's own (bonus)"]) == result.stats.iterations
    fig = adaptation_figure(result.stats, result.trace)
    assert [t.name for t in fig.data[:len(SOURCES)]] == [name for name, _ in SOURCES]
    lines = {t.name for t in fig.data[len(SOURCES):]}
    assert lines == {"draft nodes", "looked-up nodes", "draft depth", "D_0"}


def test_leave_one_out_figure_marks_what_pays_and_what_is_noise():
    from dynatree_lib.book.viz import leave_one_out_figure

    def records(method, values):
        return [{"prompt_index": i, "method": method, "speedup": v} for i, v in enumerate(values)]

    doc = {"records": [*records("default@head", [2.0, 2.1, 1.9, 2.0]),
                       *records("default-lookup@head", [1.0, 1.1, 1.0, 0.9]),   # the lookup pays
                       *records("dynatree@head", [2.1, 1.9, 2.0, 2.0])]}         # within noise
    fig = leave_one_out_figure({"chat": doc}, [("lookup", "lookup"), ("paper", "paper")], ("head",))
    (trace,) = fig.data
    assert list(trace.y) == ["lookup", "paper"]
    assert trace.x[0] == pytest.approx(1.0) and abs(trace.x[1]) < 0.1
    assert list(trace.marker.symbol) == ["circle", "circle-open"]
    assert "feature head" in trace.name


def test_the_committed_explorer_is_not_degenerate():
    """Every setting of the committed explorer file draws some tree with draft nodes, most
    settings draw their own tree sequence, and every value of every knob changes some tree."""
    import itertools

    from dynatree_lib.harness.explorer import explorer_label

    doc = read_results("explorer_wikitext2_embedded_cpu.json")
    shapes = {label: tuple((tuple(t["tokens"]), tuple(t["parents"])) for t in trees)
              for label, trees in doc["trees"].items()}
    assert all(any(len(t["tokens"]) > 1 for t in trees) for trees in doc["trees"].values())
    assert len(set(shapes.values())) >= 0.5 * len(shapes)   # B_max = 1 makes θ_high moot
    grid = doc["grid"]
    keys = list(grid)

    def label(k: int, value, rest) -> str:   # the setting with knob k at value, the rest as given
        values = list(rest)
        values.insert(k, value)
        return explorer_label(*values)

    for k, key in enumerate(keys):
        others = [grid[o] for o in keys if o != key]
        for a, b in itertools.combinations(grid[key], 2):
            assert any(shapes[label(k, a, rest)] != shapes[label(k, b, rest)]
                       for rest in itertools.product(*others)), f"{key} {a} and {b} never differ"
