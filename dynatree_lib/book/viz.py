"""Plotly figures for the book: token trees, tree masks, acceptance by depth, benchmark results.

Every figure goes through :func:`show`, the one display helper: it emits the figure's
JSON (rendered by JupyterLab, VS Code and Colab) together with an HTML ``<div>`` that
uses the page's single plotly.js (loaded once by the book from ``_static``), so static
pages neither fetch a CDN nor load MathJax twice. Result plots read ``results/*.json``
documents only (see :mod:`dynatree_lib.harness.bench`).
"""

from __future__ import annotations

import json
import math

import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from ..core.decode import IterationTrace
from ..models.pairs import DRAFTER_TITLES

ACCEPTED = "#d62728"
EDGE = "#9aa5b1"
PALETTE = qualitative.D3  # one colour per method, the same in every panel of a figure
# Trees are coloured by log10 p(path): on a linear scale almost every node looks alike.
# The scale spans 1 down to 10^-PROB_DECADES; smaller probabilities share its bottom colour.
PROB_DECADES = 3


def log_prob_colour(probs: list[float]) -> list[float]:
    """log10 of each path probability, floored at -PROB_DECADES (the node colours of a tree)."""
    return [max(math.log10(p), -PROB_DECADES) if p > 0 else -PROB_DECADES for p in probs]


def prob_colorbar() -> dict:
    """Colour bar for :func:`log_prob_colour`: ticks labelled as probabilities (1, 0.1, 0.01, ...)."""
    ticks = list(range(0, -PROB_DECADES - 1, -1))
    text = [f"{10.0 ** t:g}" for t in ticks]
    text[-1] = "≤ " + text[-1]
    return {"title": {"text": "p(path)"}, "tickvals": ticks, "ticktext": text}


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
    grafted = set(range(trace.drafted_nodes or len(xy), len(xy)))
    hover = [f"node {i} · depth {trace.depths[i]}<br>token {_label(t, tokenizer)!s}<br>"
             + ("copied from the context (lookup)<br>" if i in grafted else
                f"q(token | parent) = {trace.draft_prob[i]:.3f}<br>p(path) = {trace.path_prob[i]:.3g}<br>")
             + f"target's next: {_label(trace.target_next[i], tokenizer)}"
             + ("<br><b>accepted</b>" if i in accepted else "")
             for i, t in enumerate(trace.tokens)]
    fig.add_trace(go.Scatter(
        x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers+text", hovertext=hover, hoverinfo="text",
        text=[_label(t, tokenizer) for t in trace.tokens], textposition="middle right", showlegend=False,
        marker={"size": 14, "color": log_prob_colour(trace.path_prob), "colorscale": "Viridis",
                "cmin": -PROB_DECADES, "cmax": 0, "colorbar": prob_colorbar(),
                "symbol": ["diamond" if i in grafted else "circle" for i in range(len(xy))],
                "line": {"width": [3 if i in accepted else 0.5 for i in range(len(xy))],
                         "color": [ACCEPTED if i in accepted else "#333" for i in range(len(xy))]}}))
    fig.update_layout(title=title or f"{len(xy) - 1} draft nodes, {len(accepted) - 1} accepted",
                      xaxis={"title": "depth", "dtick": 1}, yaxis={"visible": False},
                      height=max(300, 22 * (1 + sum(1 for n in range(len(xy)) if n not in trace.parents))),
                      margin={"l": 20, "r": 20, "t": 50, "b": 40}, plot_bgcolor="white")
    return fig


def mask_figure(ancestors, tokens: list[str] | None = None, title: str | None = None) -> go.Figure:
    """Heatmap of a tree attention mask (rows: query nodes, columns: key nodes), one cell per node.

    Axes are indexed by node number (plotly would merge repeated token labels used as
    categories); the token text goes into the tick labels and the hover text.
    """
    matrix = [[int(v) for v in row] for row in ancestors.tolist()]
    n = len(matrix)
    names = [f"{i}: {tokens[i]}" if tokens else str(i) for i in range(n)]
    hover = [[f"query {names[q]}<br>key {names[k]}<br>{'visible' if matrix[q][k] else 'masked'}"
              for k in range(n)] for q in range(n)]
    fig = go.Figure(go.Heatmap(z=matrix, x=list(range(n)), y=list(range(n)), text=hover, hoverinfo="text",
                               colorscale=[[0, "white"], [1, "#1f77b4"]], showscale=False, xgap=1, ygap=1))
    ticks = {"tickmode": "array", "tickvals": list(range(n)), "ticktext": names}
    side = min(900, max(320, 110 + 26 * n))
    fig.update_layout(title=title or f"tree attention mask over {n} nodes (the prefix, always visible, "
                                     "is not shown)",
                      yaxis={"autorange": "reversed", "title": "query node", **ticks},
                      xaxis={"title": "key node", "tickangle": -60, **ticks},
                      height=side, width=side + 120, margin={"t": 60, "l": 40})
    return fig


def kv_cache_figure(prefix_len: int, tokens: list[str], accepted_path: list[int],
                    shown_prefix: int = 4) -> go.Figure:
    """The target's KV cache before and after keeping the accepted path (one cell per entry).

    Before: the prefix, then every tree node in BFS order (the root first). After: the
    prefix, then the accepted nodes moved into consecutive slots; everything else is dropped.
    Only the last ``shown_prefix`` prefix entries are drawn.
    """
    n = len(tokens)
    accepted = set(accepted_path)
    prefix = [("prefix", f"…{prefix_len - shown_prefix + i}") for i in range(shown_prefix)]
    rows = {"before verification": prefix + [("accepted" if i in accepted else "dropped",
                                              f"node {i}: {tokens[i]}") for i in range(n)],
            "after the gather": prefix + [("accepted", f"node {i}: {tokens[i]}") for i in accepted_path]}
    colours = {"prefix": "#c7c7c7", "accepted": ACCEPTED, "dropped": "#aec7e8"}
    fig = go.Figure()
    for y, cells in enumerate(rows.values()):
        for x, (kind, label) in enumerate(cells):
            slot = prefix_len - shown_prefix + x
            fig.add_trace(go.Scatter(x=[x], y=[-y], mode="markers+text", text=[label.split(": ")[-1]],
                                     textposition="middle center", hoverinfo="text",
                                     hovertext=f"slot {slot}: {label} ({kind})", showlegend=False,
                                     marker={"symbol": "square", "size": 34, "color": colours[kind]}))
    for kind, colour in colours.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=kind,
                                 marker={"symbol": "square", "size": 12, "color": colour}))
    fig.update_layout(title="the target's KV cache around one verification", height=260,
                      yaxis={"tickvals": [0, -1], "ticktext": list(rows), "range": [-1.6, 0.6]},
                      xaxis={"title": f"cache slot (prefix length {prefix_len})", "showticklabels": False},
                      plot_bgcolor="white", margin={"t": 50, "l": 150},
                      legend={"orientation": "h", "y": -0.3})
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


def tree_slider_figure(traces: dict[str, IterationTrace], tokenizer=None, slider_title: str = "config",
                       details: dict[str, str] | None = None) -> go.Figure:
    """Several trees in one figure with a slider: static pages can move through configs.

    Keys of ``traces`` are the slider's step labels: keep them short (``"4"``, ``"0.9"``) so
    they do not overlap; ``details[key]`` (e.g. the run's tau and speedup) goes into the title.
    """
    fig = go.Figure()
    spans, layout = [], None
    for label, trace in traces.items():
        single = tree_figure(trace, tokenizer)
        start = len(fig.data)
        for item in single.data:
            fig.add_trace(item)
        extra = f" · {details[label]}" if details and label in details else ""
        title = f"{slider_title} = {label}: {single.layout.title.text}{extra}"
        spans.append((label, start, len(fig.data), title, single.layout.height))
        layout = layout or single.layout
    height = max(span[4] for span in spans) + 60
    steps = []
    for i, (label, start, stop, title, _) in enumerate(spans):
        visible = [start <= j < stop for j in range(len(fig.data))]
        # "title.text": plotly.js 3 drops a plain-string {"title": ...} and the title vanishes
        steps.append({"label": label, "method": "update",
                      "args": [{"visible": visible}, {"title.text": title}]})
        if i:
            for j in range(start, stop):
                fig.data[j].visible = False
    fig.update_layout(layout)
    fig.update_layout(title={"text": spans[0][3]}, height=height,
                      sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": f"{slider_title}: "},
                                "pad": {"t": 40}}])
    return fig


def sweep_heatmap_figure(doc: dict, metric: str = "speedup") -> go.Figure:
    """Fixed-tree sweep: depth x branch heatmap of ``metric``, one slider step per threshold.

    Reads the grid's trees (labels ``fixed D=.. B=.. t=..``, :func:`bench.fixed_grid`), so
    an ablation file that holds the sweep beside other fixed trees works too."""
    cells = {}
    for m in doc["methods"]:
        if m["label"].startswith("fixed D=") and metric in doc["aggregates"][m["label"]]:
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


# ---- results chapters: every function below reads result documents only ----------------------

TABLE_COLUMNS = {"throughput": ("tok/s", 1.0), "speedup": ("S", 1.0), "tau": ("τ", 1.0),
                 "acceptance_rate": ("α (per drafted depth)", 1.0), "mean_tree_size": ("nodes", 1.0),
                 "ttft": ("TTFT ms", 1000.0),
                 "tpot": ("TPOT ms", 1000.0), "iterations": ("iterations", 1.0),
                 "target_forwards": ("target fwd", 1.0), "draft_forwards": ("draft fwd", 1.0),
                 "peak_memory_bytes": ("peak MB", 1e-6)}


def run_description(doc: dict) -> str:
    """The machine, pair and command behind a results file: printed above its tables and figures."""
    env, protocol = doc["environment"], doc["protocol"]
    draft = doc["pair"]["draft"]
    # a hub id or a weights file with its hash; files written before drafts were named hold a class name
    named = f" (draft {draft})" if "@" in draft or "/" in draft else ""
    return (f"{doc['pair']['name']} pair{named} on {env['device_name']} ({env['device']}, {env['dtype']}, "
            f"{env['threads']} threads), torch {env['torch']}, transformers {env['transformers']}, "
            f"{env['date'][:10]}, commit {str(env['git_commit'])[:8]}\n"
            f"{protocol['num_prompts']} prompts after {protocol['warmup']} warm-up, "
            f"T = {protocol['max_new_tokens']}; command: {protocol['command']}")


# The table's columns: few enough to fit a 1280 px page with "mean ± std" cells.
FRAME_COLUMNS = ("speedup", "tau", "acceptance_rate", "throughput", "tpot", "draft_forwards")


def _exact_cell(a: dict) -> str:
    """"yes"; "NO (mismatched prompts)"; "tie (prompts)" when every divergence is a near-tie
    (half precision); "n/a" for sampled runs, which have no token-level reference."""
    if a["identical_to_ar"] is None:
        return "n/a"
    if a["identical_to_ar"]:
        return "yes"
    return f"NO ({a['mismatches']})" if a["mismatches"] else f"tie ({a['near_ties']})"


def results_frame(doc: dict, std: bool = False, columns: tuple[str, ...] = FRAME_COLUMNS):
    """A pandas table of the aggregates: one row per method, means (``std=True``: "mean ± std").

    S = speedup over AR, τ = tokens per target forward, α = acceptance (chapter 0)."""
    import pandas as pd

    rows = {}
    for label, a in doc["aggregates"].items():
        row = {"exact": _exact_cell(a)}
        for metric in columns:
            name, scale = TABLE_COLUMNS[metric]
            if metric in a:
                mean, sd = a[metric]["mean"] * scale, a[metric]["std"] * scale
                row[name] = f"{mean:.2f} ± {sd:.2f}" if std else round(mean, 2)
        rows[label] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    order = ["exact", *(TABLE_COLUMNS[metric][0] for metric in columns)]  # AR lacks α: keep the order
    return frame[[name for name in order if name in frame.columns]]


def metric_dropdown_figure(docs: dict[str, dict], metrics: tuple[str, ...] = (
        "speedup", "throughput", "tau", "ttft", "tpot", "acceptance_rate", "peak_memory_bytes"),
        title: str = "main comparison (mean ± std over prompts)") -> go.Figure:
    """Grouped bars (one group per method, one colour per document) with a dropdown over metrics."""
    fig = go.Figure()
    buttons = []
    for i, metric in enumerate(metrics):
        name, scale = TABLE_COLUMNS.get(metric, (metric, 1.0))
        for dataset, doc in docs.items():
            cells = [(m, a[metric]) for m, a in doc["aggregates"].items() if metric in a]
            fig.add_trace(go.Bar(name=dataset, x=[m for m, _ in cells], visible=i == 0, legendgroup=dataset,
                                 y=[c["mean"] * scale for _, c in cells],
                                 error_y={"type": "data", "array": [c["std"] * scale for _, c in cells]}))
        buttons.append({"label": name, "method": "update",
                        "args": [{"visible": [j // len(docs) == i for j in range(len(metrics) * len(docs))]},
                                 {"yaxis": {"title": name}}]})
    fig.update_layout(barmode="group", height=420, yaxis={"title": TABLE_COLUMNS[metrics[0]][0]},
                      updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.18}],
                      title=title, margin={"t": 80})
    return fig


def time_breakdown_figure(doc: dict) -> go.Figure:
    """Where the time of one generated token goes, per method of ours (AR included): draft, verify, rest."""
    fig = go.Figure()
    labels = [m for m, a in doc["aggregates"].items() if "time_verify" in a]
    parts = (("time_draft", "draft"), ("time_verify", "verify (target)"), ("time_other", "bookkeeping"))
    for key, name in parts:
        y = [1000 * doc["aggregates"][m][key]["mean"] / doc["aggregates"][m]["new_tokens"]["mean"]
             for m in labels]
        fig.add_trace(go.Bar(name=name, x=labels, y=y))
    fig.update_layout(barmode="stack", height=380, yaxis={"title": "ms per generated token"},
                      title="time per generated token, split (prefill is part of verify)")
    return fig


def cost_curve_figure(costs: dict, absolute: bool = False, roles: tuple[str, ...] = ("target", "draft")) \
        -> go.Figure:
    """Forward cost of n tokens in units of a one-token step (``absolute``: in milliseconds, to
    compare curves of different kernels or dtypes): default vs packed weights (vs another dtype)."""
    fig = go.Figure()
    for role in roles:
        for name, curve in costs["curves"][role].items():
            sizes = [int(n) for n in curve]
            one = curve["1"]
            fig.add_trace(go.Scatter(
                x=sizes, y=[1000 * t if absolute else t / one for t in curve.values()], mode="lines+markers",
                name=f"{role}, {name} ({1000 * one:.1f} ms / token)",
                line={"dash": "solid" if name == "packed" else "dash" if name == "bfloat16" else "dot"}))
    fig.update_layout(xaxis={"title": "tokens in one forward (after a cached prefix)", "type": "log"},
                      yaxis={"title": "ms per forward" if absolute else "cost / one-token step"}, height=400,
                      title=f"forward cost curve · {costs['environment']['device_name']}")
    return fig


def cost_model_figure(rows: list[dict], title: str = "cost model check") -> go.Figure:
    """Predicted vs measured speedup, with the y = x line (rows from
    :func:`dynatree_lib.harness.costs.predicted_vs_measured`).

    One legend entry per method, names in the hover text: labels beside the points would overprint.
    """
    top = max([1.0] + [r[k] for r in rows for k in ("predicted", "measured")]) * 1.1
    fig = go.Figure(go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"dash": "dot", "color": EDGE},
                               name="prediction = measurement"))
    for n, r in enumerate(rows):
        fig.add_trace(go.Scatter(x=[r["predicted"]], y=[r["measured"]], mode="markers", name=r["method"],
                                 marker={"size": 11, "color": PALETTE[n % len(PALETTE)]},
                                 hovertemplate=f"{r['method']}<br>predicted %{{x:.2f}}<br>"
                                               "measured %{y:.2f}<extra></extra>"))
    fig.update_layout(xaxis={"title": "predicted speedup", "range": [0, top]},
                      yaxis={"title": "measured speedup", "range": [0, top]}, height=420, title=title)
    return fig


def sensitivity_figure(doc: dict) -> go.Figure:
    """DynaTree sensitivity: speedup (left) and tau (right) of every configuration, one row each.

    Horizontal bars put the configurations' labels on the y axis, where they never overprint;
    one colour per group (what varies: default, thresholds, breadth, depth).
    """
    from plotly.subplots import make_subplots

    groups: dict[str, list[str]] = {}
    for label in doc["aggregates"]:
        if label == "ar":
            continue
        group = ("default" if label.endswith("default") else "thresholds" if label.startswith("θ")
                 else "breadth" if label.startswith("B_") else "depth")
        groups.setdefault(group, []).append(label)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("speedup over AR (95 % interval over prompts)",
                                        "tau (tokens per target forward)"))
    for n, (group, labels) in enumerate(groups.items()):
        a = [doc["aggregates"][m] for m in labels]
        low, high = zip(*(speedup_interval(doc, m) for m in labels), strict=True)
        for col, metric in enumerate(("speedup", "tau"), 1):
            means = [x[metric]["mean"] for x in a]
            fig.add_trace(go.Bar(
                y=labels, x=means, orientation="h", name=group, legendgroup=group,
                showlegend=col == 1, marker_color=PALETTE[n % len(PALETTE)],
                error_x=interval_bars(means, low, high) if metric == "speedup" else None,
                hovertemplate=f"%{{y}}<br>{metric} %{{x:.2f}}<extra>{group}</extra>"), row=1, col=col)
    fig.add_vline(x=1, line={"dash": "dot", "color": EDGE}, row=1, col=1)  # AR
    rows = sum(len(labels) for labels in groups.values())
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    # one bar per row (each configuration is in one group): "relative" keeps them full width
    fig.update_layout(barmode="relative", height=120 + 30 * rows, margin={"l": 170, "t": 80},
                      title="DynaTree sensitivity (each row: one configuration)")
    return fig


def mean_prompt_tokens(doc: dict) -> float:
    """Mean prompt length over the measured prompts of a results file (each prompt counted once)."""
    lengths = {r["prompt_index"]: r["prompt_tokens"] for r in doc["records"]}
    return sum(lengths.values()) / len(lengths)


def interval_bars(means, lows, highs, thickness: float = 1) -> dict:
    """Plotly error bars from each value's interval (asymmetric, as bootstrap intervals are)."""
    return {"type": "data", "symmetric": False, "thickness": thickness,
            "array": [h - m for h, m in zip(highs, means, strict=True)],
            "arrayminus": [m - lo for lo, m in zip(lows, means, strict=True)]}


def speedup_interval(doc: dict, label: str) -> tuple[float, float]:
    """The 95 % bootstrap interval over prompts of a method's mean speedup: AR's speedup is 1 on
    every prompt, so it is 1 + the paired interval of speedup(label) - speedup(AR)."""
    from ..harness.paired import paired_difference

    if label == "ar":
        return 1.0, 1.0
    d = paired_difference(doc, label, "ar")
    return 1 + d["low"], 1 + d["high"]


def scaling_figure(length_docs: list[dict], prompt_docs: list[dict]) -> go.Figure:
    """Four panels as in the paper: throughput and speedup (with its 95 % interval over prompts)
    against T and against the mean actual prompt length."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, shared_xaxes="columns", horizontal_spacing=0.1, vertical_spacing=0.08)
    # Right panels: the mean *actual* prompt length of a file, not its cap (short prompts stay short).
    panels = ((length_docs, lambda d: d["protocol"]["max_new_tokens"]), (prompt_docs, mean_prompt_tokens))
    for col, (docs, x_of) in enumerate(panels, 1):
        docs = sorted(docs, key=x_of)
        xs = [x_of(d) for d in docs]
        for n, label in enumerate(docs[0]["aggregates"] if docs else []):
            for row, metric in enumerate(("throughput", "speedup"), 1):
                ys = [d["aggregates"][label][metric]["mean"] for d in docs]
                bars = None
                if metric == "speedup" and label != "ar":
                    bars = interval_bars(ys, *zip(*(speedup_interval(d, label) for d in docs), strict=True))
                fig.add_trace(go.Scatter(x=xs, y=ys, error_y=bars,
                                         mode="lines+markers", name=label, legendgroup=label,
                                         showlegend=row == 1 and col == 1,
                                         line={"color": PALETTE[n % len(PALETTE)]}),
                              row=row, col=col)
    fig.update_yaxes(title_text="tokens / s", row=1, col=1)
    fig.update_yaxes(title_text="speedup over AR", row=2, col=1)
    fig.update_xaxes(title_text="generated tokens T", row=2, col=1)
    fig.update_xaxes(title_text="mean actual prompt length (tokens)", row=2, col=2)
    fig.update_layout(height=620, title="scaling with generation length (left) and prompt length (right)")
    return fig



# ---- the static explorer: controls over a precomputed results file, no kernel needed -------------

EXPLORER_KEYS = (("max_depth", "D_max"), ("max_branch", "B_max"), ("theta_high", "θ_high"),
                 ("threshold", "ε (prune)"))


def _explorer_tree(tree: dict) -> dict:
    """Positions, labels and colours of one stored tree, ready for plotly.js."""
    xy = tree_layout(tree["parents"])
    accepted = set(tree["accepted_path"])
    edges = [[xy[p][0], xy[p][1], xy[i][0], xy[i][1], int(i in accepted and p in accepted)]
             for i, p in enumerate(tree["parents"]) if p >= 0]
    rows = zip(tree["depths"], tree["text"], tree["path_prob"], strict=True)
    hover = [f"node {i} · depth {d}<br>{text!r}<br>p(path) = {p:.3g}"
             + ("<br><b>accepted</b>" if i in accepted else "") for i, (d, text, p) in enumerate(rows)]
    return {"x": [p[0] for p in xy], "y": [p[1] for p in xy], "text": [repr(t)[1:-1] for t in tree["text"]],
            "hover": hover, "color": log_prob_colour(tree["path_prob"]), "edges": edges,
            "accepted": [int(i in accepted) for i in range(len(xy))], "nodes": len(xy) - 1,
            "accepted_n": len(accepted) - 1, "committed": len(tree["committed"])}


def explorer_start(settings: dict[str, dict], grid: dict[str, list[float]]) -> tuple[str, int]:
    """The setting key and iteration the explorer opens on.

    The setting: DynaTree's default value of each knob where the grid has it, else the grid's
    value nearest to it. The iteration: its first stored tree with >= 2 draft nodes of which >= 2 are
    accepted (an empty first tree shows nothing), else of which one is accepted. If that
    setting has neither, the first tree of any setting that accepts two (then one); if none
    accepts anything, the default setting's first tree.
    """
    from ..core.methods import DynaTree

    default = DynaTree()
    def nearest(key: str) -> float:
        return min(grid[key], key=lambda v: abs(v - getattr(default, key)))

    values = [nearest(k) for k, _ in EXPLORER_KEYS]
    start = "|".join(f"{v:g}" for v in values)
    start = start if start in settings else next(iter(settings))
    for keys, accepted in (((start,), 2), ((start,), 1), (settings, 2), (settings, 1)):
        for key in keys:
            for i, tree in enumerate(settings[key]["trees"]):
                if tree["nodes"] >= 2 and tree["accepted_n"] >= accepted:
                    return key, i
    return start, 0


def explorer_html(doc: dict, element_id: str = "dynatree-explorer") -> str:
    """Menus for D_max, B_max, θ_high and ε and the iteration over an ``explore`` results file:
    the chosen setting's tree, tokens per forward and speedup, drawn by the page's plotly.js
    (``explorer.js`` next to this module). Works with any number of stored iterations."""
    from importlib import resources

    a = doc["aggregates"]
    settings = {}
    for method in doc["methods"]:
        if method["kind"] != "dynatree":
            continue
        label, config = method["label"], method["config"]
        stats = a[label]
        settings["|".join(f"{config[k]:g}" for k, _ in EXPLORER_KEYS)] = {
            "label": label, "tau": stats["tau"]["mean"], "speedup": stats["speedup"]["mean"],
            "speedup_std": stats["speedup"]["std"], "acceptance": stats["acceptance_rate"]["mean"],
            "nodes": stats["mean_tree_size"]["mean"],
            "trees": [_explorer_tree(t) for t in doc["trees"][label]]}
    grid = {k: sorted({float(m["config"][k]) for m in doc["methods"] if m["kind"] == "dynatree"})
            for k, _ in EXPLORER_KEYS}
    start, start_iteration = explorer_start(settings, grid)
    menus = []
    for (key, name), chosen in zip(EXPLORER_KEYS, start.split("|"), strict=True):
        options = "".join(f'<option value="{v:g}"{" selected" if f"{v:g}" == chosen else ""}>{v:g}</option>'
                          for v in grid[key])
        menus.append(f'<label style="margin-right:1em">{name} '
                     f'<select data-key="{key}">{options}</select></label>')
    iterations = max(len(s["trees"]) for s in settings.values())
    options = "".join(f'<option value="{i}"{" selected" if i == start_iteration else ""}>{i + 1}</option>'
                      for i in range(iterations))
    menus.append(f'<label>iteration <select data-key="iteration">{options}</select></label>')
    payload = json.dumps({"settings": settings, "keys": [k for k, _ in EXPLORER_KEYS],
                          "colors": {"accepted": ACCEPTED, "edge": EDGE},
                          "colorbar": prob_colorbar(), "cmin": -PROB_DECADES})
    script = resources.files("dynatree_lib.book").joinpath("explorer.js").read_text()
    return (f'<div id="{element_id}" class="dynatree-explorer">'
            f'<div class="dt-menus" style="margin:0.5em 0">{"".join(menus)}</div>'
            '<div class="dt-stats" style="font-family:monospace;margin:0.3em 0"></div>'
            '<div class="dt-plot" style="width:100%;height:440px"></div>'
            f'<script>{script.replace("__ELEMENT_ID__", element_id).replace("__DATA__", payload)}</script>'
            "</div>")


# ---- Spec-Bench and the GPU check ------------------------------------------------------------------

def spec_bench_frame(doc: dict, metric: str = "speedup"):
    """The leaderboard's shape: one row per method, one column per task group and overall
    (``metric``: speedup or tau, from totals over each group's prompts)."""
    import pandas as pd

    from ..harness.data import SPEC_BENCH_GROUPS

    names = {**SPEC_BENCH_GROUPS, "overall": "Overall"}
    groups = [g for g in names if g in doc["groups"]]
    rows = {label: {names[g]: round(doc["groups"][g][label][metric], 2) for g in groups}
            for label in doc["aggregates"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def spec_bench_figure(doc: dict) -> go.Figure:
    """Speedup and τ per method for one task group at a time (the dropdown; Overall first).

    Methods are rows (horizontal bars), so their names stay readable however many there are.
    """
    from ..harness.data import SPEC_BENCH_GROUPS

    names = {"overall": "Overall", **SPEC_BENCH_GROUPS}
    groups = [g for g in names if g in doc["groups"]]
    labels = list(doc["aggregates"])
    metrics = (("speedup", "speedup over AR (totals)"), ("tau", "τ, tokens per target forward"))
    fig = go.Figure()
    for i, group in enumerate(groups):
        for m, (metric, name) in enumerate(metrics):
            x = [doc["groups"][group][label][metric] for label in labels]
            fig.add_trace(go.Bar(name=name, y=labels, x=x, orientation="h", visible=i == 0,
                                 legendgroup=metric, showlegend=i == 0, marker_color=PALETTE[m],
                                 hovertemplate=f"%{{y}}<br>{metric} %{{x:.2f}}<extra>{names[group]}</extra>"))
    per = len(metrics)
    buttons = [{"label": names[g], "method": "update",
                "args": [{"visible": [j // per == i for j in range(per * len(groups))]},
                         {"title.text": f"Spec-Bench · {names[g]}"}]}
               for i, g in enumerate(groups)]
    fig.add_vline(x=1, line={"dash": "dot", "color": EDGE})  # AR: speedup 1, one token per forward
    fig.update_layout(barmode="group", height=140 + 34 * len(labels), yaxis={"autorange": "reversed"},
                      xaxis={"title": "speedup over AR · τ (AR = 1)"},
                      updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.12}],
                      title=f"Spec-Bench · {names[groups[0]]}", margin={"t": 90, "l": 160},
                      legend={"orientation": "h", "y": -0.12})
    return fig


def gpu_cost_figure(doc: dict, tokens_per_iteration: float, draft_forwards: float, source: str) -> go.Figure:
    """A ``gpu-check`` file: the target's measured cost curve r(n) and the speedup S(n) the cost
    model predicts for a tree of n nodes from a *published* τ (labelled as a prediction)."""
    from plotly.subplots import make_subplots

    costs = doc["costs"]
    curve = {int(n): t / costs["target_curve"]["1"] for n, t in costs["target_curve"].items()}
    sizes = sorted(curve)
    beta = costs["draft_cost_ratio"]
    predicted = [tokens_per_iteration / (curve[n] + draft_forwards * beta) for n in sizes]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "measured: r(n) = t(n) / t(1)", f"predicted S(n) from {source}"))
    fig.add_trace(go.Scatter(x=sizes, y=[curve[n] for n in sizes], mode="lines+markers",
                             name=f"target ({costs['configs']['target']}, {costs['dtype']})"), row=1, col=1)
    fig.add_trace(go.Scatter(x=sizes, y=predicted, mode="lines+markers", line={"dash": "dot"},
                             name=f"prediction: τ = {tokens_per_iteration:g}, f_d = {draft_forwards:g}, "
                                  f"β = {beta:.3f}"), row=1, col=2)
    fig.update_xaxes(type="log", title_text="tokens in one forward (n)")
    fig.update_yaxes(title_text="cost / one-token step", row=1, col=1)
    fig.update_yaxes(title_text="speedup (cost model)", row=1, col=2)
    env = doc["environment"]
    fig.update_layout(height=420, title=f"GPU check · {env['device_name']} · torch {env['torch']}",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def paired_difference_figure(doc: dict, pairs: list[tuple[str, str]], metric: str = "speedup",
                             title: str | None = None) -> go.Figure:
    """One row per (a, b): the mean per-prompt difference metric(a) - metric(b) with its 95 %
    bootstrap interval (:func:`dynatree_lib.harness.paired.paired_difference`); a row whose interval
    crosses the zero line is within noise."""
    from ..harness.paired import paired_difference

    diffs = [paired_difference(doc, a, b, metric) for a, b in pairs]
    labels = [f"{a}  vs  {b}" for a, b in pairs]
    colours = [PALETTE[2] if d["verdict"] == "a" else PALETTE[3] if d["verdict"] == "b" else EDGE
               for d in diffs]
    fig = go.Figure(go.Scatter(
        x=[d["mean"] for d in diffs], y=labels, mode="markers", marker={"size": 11, "color": colours},
        error_x={"type": "data", "symmetric": False, "array": [d["high"] - d["mean"] for d in diffs],
                 "arrayminus": [d["mean"] - d["low"] for d in diffs], "thickness": 2},
        hovertext=[f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] over {d['prompts']} prompts"
                   for d in diffs], hoverinfo="text", showlegend=False))
    fig.add_vline(x=0, line={"dash": "dot", "color": "#555"})
    fig.update_layout(title=title or f"paired differences of {metric} (95 % bootstrap interval over prompts)",
                      xaxis={"title": f"{metric}(left) - {metric}(right)"}, yaxis={"autorange": "reversed"},
                      height=120 + 40 * len(pairs), margin={"l": 330})
    return fig


def leave_one_out_figure(docs: dict[str, dict], removed: list[tuple[str, str]],
                         drafters: tuple[str, ...] = ("head", "model")) -> go.Figure:
    """What each rule of the default is worth: one row per rule or source removed (``removed``:
    (variant suffix, name); the variant is ``default-<suffix>@<drafter>``, suffix ``"paper"``
    the paper's ``dynatree@<drafter>``), one marker per (dataset of ``docs``, drafter): the
    mean per-prompt speedup difference default − variant with its 95 % interval. Right of
    zero: removing it costs speed, so the rule pays; hollow markers: within noise."""
    from ..harness.paired import paired_difference

    fig = go.Figure()
    names = [name for _, name in removed]
    for i, (data, doc) in enumerate(docs.items()):
        for j, drafter in enumerate(drafters):
            default = f"default@{drafter}"
            variants = [f"dynatree@{drafter}" if rule == "paper" else f"default-{rule}@{drafter}"
                        for rule, _ in removed]
            diffs = [paired_difference(doc, default, v) for v in variants]
            colour = PALETTE[2 * i + j]
            fig.add_trace(go.Scatter(
                x=[d["mean"] for d in diffs], y=names, mode="markers",
                name=f"{data}, {DRAFTER_TITLES.get(drafter, drafter)}",
                marker={"size": 10, "color": colour, "line": {"color": colour, "width": 2},
                        "symbol": ["circle" if d["verdict"] != "within noise" else "circle-open"
                                   for d in diffs]},
                error_x=interval_bars([d["mean"] for d in diffs], [d["low"] for d in diffs],
                                      [d["high"] for d in diffs], thickness=1.5),
                hovertext=[f"{v}: {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] over "
                           f"{d['prompts']} prompts" for v, d in zip(variants, diffs, strict=True)],
                hoverinfo="text"))
    fig.add_vline(x=0, line={"dash": "dot", "color": "#555"})
    fig.update_layout(
        title="leave one out: the default's speedup minus the speedup without each part",
        xaxis={"title": "speedup(default) − speedup(without it), per prompt (95 % interval)"},
        yaxis={"autorange": "reversed", "type": "category"}, scattermode="group",
        height=160 + 60 * len(removed), margin={"l": 260}, legend={"orientation": "h", "y": -0.25})
    return fig


SOURCES = (("draft only", "#1f77b4"), ("draft and lookup", "#9467bd"), ("lookup only", "#ff7f0e"),
           ("target's own (bonus)", "#c7c7c7"))


def token_sources(stats) -> dict[str, list[int]]:
    """Per iteration, the committed tokens by who proposed them: the draft alone, both sources,
    context lookup alone, or neither (the target's bonus token). ``stats``: GenerationStats."""
    rows: dict[str, list[int]] = {name: [] for name, _ in SOURCES}
    for committed, accepted, drafted, looked in zip(stats.committed, stats.accepted, stats.accepted_drafted,
                                                    stats.accepted_lookup, strict=True):
        both = drafted + looked - accepted
        for (name, _), count in zip(SOURCES, (drafted - both, both, looked - both, committed - accepted),
                                    strict=True):
            rows[name].append(count)
    return rows


def adaptation_figure(stats, traces: list[IterationTrace] | None = None, tokenizer=None,
                      title: str = "one generation: where each token came from, and the tree") -> go.Figure:
    """One generation, iteration by iteration: above, the committed tokens stacked by source
    (hover: their text when ``traces`` and ``tokenizer`` are given); below, the tree the
    iteration verified (the draft's nodes, the looked-up nodes added to them, the draft's depth)
    and the controller's D_0."""
    from plotly.subplots import make_subplots

    x = list(range(1, stats.iterations + 1))
    text = None
    if traces is not None and tokenizer is not None:
        text = [tokenizer.decode(t.committed).replace("\n", "⏎") for t in traces]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45])
    counts = token_sources(stats)
    for name, colour in SOURCES:
        fig.add_trace(go.Bar(x=x, y=counts[name], name=name, marker_color=colour,
                             customdata=text, legendgroup="tokens",
                             hovertemplate=f"iteration %{{x}}: %{{y}} {name}"
                                           + ("<br>%{customdata}" if text else "") + "<extra></extra>"),
                      row=1, col=1)
    lines = (("draft nodes", stats.tree_sizes, "#1f77b4", "solid"),
             ("looked-up nodes", stats.lookup_nodes, "#ff7f0e", "solid"),
             ("draft depth", stats.drafted_depth, "#2ca02c", "dot"),
             ("D_0", stats.base_depth, "#7f7f7f", "dash"))
    for name, values, colour, dash in lines:
        if values:
            fig.add_trace(go.Scatter(x=x, y=values, name=name, mode="lines",
                                     line={"color": colour, "dash": dash, "shape": "hv"}),
                          row=2, col=1)
    fig.update_layout(barmode="stack", height=520, title=title, legend={"orientation": "h", "y": -0.12},
                      margin={"t": 60})
    fig.update_yaxes(title_text="tokens committed", row=1, col=1)
    fig.update_yaxes(title_text="nodes · depth", row=2, col=1)
    fig.update_xaxes(title_text="iteration", row=2, col=1)
    return fig
