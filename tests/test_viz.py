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
