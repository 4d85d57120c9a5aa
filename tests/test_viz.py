"""Figures are built from real traces and results documents."""

from __future__ import annotations

import pytest

from conftest import prompt
from dynatree_lib import FixedTree, generate

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
    panel.tau_high.value, panel.tau_low.value = 0.3, 0.9  # clamped into a valid config, not an error
    assert panel.run()["identical_to_ar"]
