"""Plotly figures for the book: token trees, tree masks, acceptance by depth, benchmark results.

Every figure goes through :func:`show`, the one display helper: it emits the figure's
JSON (rendered by JupyterLab, VS Code and Colab) together with an HTML ``<div>`` that
uses the page's single plotly.js (loaded once by the book from ``_static``), so static
pages neither fetch a CDN nor load MathJax twice. Result plots read ``results/*.json``
documents only (see :mod:`dynatree_lib.bench`).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio

from .decode import IterationTrace

ACCEPTED = "#d62728"
EDGE = "#9aa5b1"


def show(fig: go.Figure) -> None:
    """Display ``fig`` in a notebook and in the static book alike."""
    import sys

    from IPython.display import display

    if "google.colab" in sys.modules:  # Colab renders neither the mime bundle nor a bare div
        fig.show(renderer="colab")
        return
    html = pio.to_html(fig, full_html=False, include_plotlyjs=False,
                       config={"displaylogo": False, "responsive": True})
    display({"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig)), "text/html": html},
            raw=True)


def _label(token: int, tokenizer) -> str:
    if tokenizer is None:
        return str(token)
    return repr(tokenizer.decode([token]))[1:-1] or "∅"


def tree_layout(parents: list[int]) -> list[tuple[float, float]]:
    """(x=depth, y) per node: leaves on consecutive rows, a parent centred on its children."""
    children: dict[int, list[int]] = {i: [] for i in range(len(parents))}
    for node, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(node)
    y: dict[int, float] = {}
    depth = {0: 0}
    next_row = [0.0]

    def place(node: int) -> float:
        for child in children[node]:
            depth[child] = depth[node] + 1
            place(child)
        if children[node]:
            y[node] = sum(y[c] for c in children[node]) / len(children[node])
        else:
            y[node], next_row[0] = next_row[0], next_row[0] + 1
        return y[node]

    place(0)
    return [(depth[i], -y[i]) for i in range(len(parents))]


def tree_figure(trace: IterationTrace, tokenizer=None, title: str | None = None) -> go.Figure:
    """One verification step: nodes coloured by draft path probability, accepted path in red."""
    xy = tree_layout(trace.parents)
    accepted = set(trace.accepted_path)
    fig = go.Figure()
    for node, parent in enumerate(trace.parents):
        if parent < 0:
            continue
        on_path = node in accepted and parent in accepted
        fig.add_trace(go.Scatter(x=[xy[parent][0], xy[node][0]], y=[xy[parent][1], xy[node][1]],
                                 mode="lines", hoverinfo="skip", showlegend=False,
                                 line={"color": ACCEPTED if on_path else EDGE,
                                       "width": 4 if on_path else 1.5}))
    hover = [f"node {i} · depth {trace.depths[i]}<br>token {_label(t, tokenizer)!s}<br>"
             f"q(token | parent) = {trace.draft_prob[i]:.3f}<br>p(path) = {trace.path_prob[i]:.3f}<br>"
             f"target's next: {_label(trace.target_next[i], tokenizer)}"
             + ("<br><b>accepted</b>" if i in accepted else "")
             for i, t in enumerate(trace.tokens)]
    fig.add_trace(go.Scatter(
        x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers+text", hovertext=hover, hoverinfo="text",
        text=[_label(t, tokenizer) for t in trace.tokens], textposition="middle right", showlegend=False,
        marker={"size": 14, "color": trace.path_prob, "colorscale": "Viridis", "cmin": 0, "cmax": 1,
                "colorbar": {"title": "p(path)"},
                "line": {"width": [3 if i in accepted else 0.5 for i in range(len(xy))],
                         "color": [ACCEPTED if i in accepted else "#333" for i in range(len(xy))]}}))
    fig.update_layout(title=title or f"{len(xy) - 1} draft nodes, {len(accepted) - 1} accepted",
                      xaxis={"title": "depth", "dtick": 1}, yaxis={"visible": False},
                      height=max(300, 22 * (1 + sum(1 for n in range(len(xy)) if n not in trace.parents))),
                      margin={"l": 20, "r": 20, "t": 50, "b": 40}, plot_bgcolor="white")
    return fig


def mask_figure(ancestors, tokens: list[str] | None = None) -> go.Figure:
    """Heatmap of a tree attention mask (rows: queries, columns: keys among the tree nodes)."""
    matrix = [[int(v) for v in row] for row in ancestors.tolist()]
    labels = tokens or [str(i) for i in range(len(matrix))]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale=[[0, "white"], [1, "#1f77b4"]],
                               showscale=False, xgap=1, ygap=1))
    fig.update_layout(title="tree attention mask (the prefix, always visible, is not shown)",
                      yaxis={"autorange": "reversed", "title": "query node"}, xaxis={"title": "key node"},
                      height=420, margin={"t": 50})
    return fig


def acceptance_by_depth_figure(series: dict[str, list[float]]) -> go.Figure:
    """P[accepted path reaches depth d] per method (from ``stats.accepted_per_depth``)."""
    fig = go.Figure()
    for name, values in series.items():
        fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers",
                                 name=name))
    fig.update_layout(xaxis={"title": "depth d", "dtick": 1}, yaxis={"title": "P[accepted to depth d]",
                      "range": [0, 1.02]}, title="acceptance by depth", height=360)
    return fig


def results_bar_figure(doc: dict, metric: str = "speedup", title: str | None = None) -> go.Figure:
    """Mean ± std of ``metric`` per method of a results document."""
    labels = [m for m, a in doc["aggregates"].items() if metric in a]
    means = [doc["aggregates"][m][metric]["mean"] for m in labels]
    stds = [doc["aggregates"][m][metric]["std"] for m in labels]
    colors = [ACCEPTED if not doc["aggregates"][m]["identical_to_ar"] else "#1f77b4" for m in labels]
    fig = go.Figure(go.Bar(x=labels, y=means, error_y={"type": "data", "array": stds}, marker_color=colors))
    env = doc["environment"]
    fig.update_layout(title=title or f"{metric} · {doc['pair']['name']} pair · {doc['dataset']} · "
                      f"{env['device_name']}", yaxis={"title": metric}, height=380)
    return fig


def tree_slider_figure(traces: dict[str, IterationTrace], tokenizer=None,
                       slider_title: str = "config") -> go.Figure:
    """Several trees in one figure with a slider: static pages can move through configs."""
    fig = go.Figure()
    spans, layout = [], None
    for label, trace in traces.items():
        single = tree_figure(trace, tokenizer)
        start = len(fig.data)
        for item in single.data:
            fig.add_trace(item)
        spans.append((label, start, len(fig.data), single.layout.title.text, single.layout.height))
        layout = layout or single.layout
    steps = []
    for i, (label, start, stop, title, height) in enumerate(spans):
        visible = [start <= j < stop for j in range(len(fig.data))]
        steps.append({"label": label, "method": "update",
                      "args": [{"visible": visible}, {"title": f"{label}: {title}", "height": height}]})
        if i:
            for j in range(start, stop):
                fig.data[j].visible = False
    fig.update_layout(layout)
    fig.update_layout(title=steps[0]["args"][1]["title"],
                      sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": f"{slider_title}: "},
                                "pad": {"t": 40}}])
    return fig


def sweep_heatmap_figure(doc: dict, metric: str = "speedup") -> go.Figure:
    """Fixed-tree sweep: depth x branch heatmap of ``metric``, one slider step per threshold."""
    cells = {}
    for m in doc["methods"]:
        if m["kind"] == "fixed" and metric in doc["aggregates"][m["label"]]:
            c = m["config"]
            cells[(c["threshold"], c["depth"], c["branch"])] = doc["aggregates"][m["label"]][metric]["mean"]
    thresholds = sorted({t for t, _, _ in cells})
    depths = sorted({d for _, d, _ in cells})
    branches = sorted({b for _, _, b in cells})
    fig = go.Figure()
    for i, t in enumerate(thresholds):
        z = [[cells.get((t, d, b)) for b in branches] for d in depths]
        fig.add_trace(go.Heatmap(z=z, x=[f"B={b}" for b in branches], y=[f"D={d}" for d in depths],
                                 colorscale="Viridis", visible=i == 0, texttemplate="%{z:.2f}",
                                 colorbar={"title": metric}))
    steps = [{"label": f"{t:g}", "method": "update",
              "args": [{"visible": [j == i for j in range(len(thresholds))]}]}
             for i, t in enumerate(thresholds)]
    fig.update_layout(title=f"fixed-tree sweep: {metric} (pruning threshold on the slider)", height=420,
                      sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "threshold: "}}])
    return fig
