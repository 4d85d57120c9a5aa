"""Every measured number the book's prose and the README's table state, computed from results files.

The chapters glue these values into their text (``myst_nb.glue``) and
``scripts/update_readme.py`` writes :func:`readme_table` into README.md; a test recomputes
both from the committed files and fails when a chapter or the README disagrees with them
(a results file changed and nobody re-executed the chapter or regenerated the table).
"""

from __future__ import annotations

from .bench import read_results
from .costs import read_costs
from .resources import find_results

MAIN = {"wikitext2": "main_wikitext2_embedded_cpu.json", "pg19": "main_pg19_embedded_cpu.json"}
SPEC_BENCH = "spec_bench_embedded_cpu.json"
TABLE_METHODS = (("hf", "HF `generate` greedy"), ("hf-assisted", "HF assisted generation"),
                 ("prompt-lookup", "HF prompt lookup"), ("linear", "Linear (k = 8)"),
                 ("fixed", "FixedTree (8, 3, 0.1)"), ("dynatree", "**DynaTree**"),
                 ("dynatree+lookup", "DynaTree + lookup (extension)"))


def _mean(doc: dict, label: str, metric: str) -> float:
    return doc["aggregates"][label][metric]["mean"]


def _available(name: str) -> bool:
    return bool(find_results(name))


def book_numbers() -> dict[str, float | str]:
    """{name: value} of every number the chapters cite from ``results/`` (see the module doc)."""
    numbers: dict[str, float | str] = {}
    for dataset, name in MAIN.items():
        if not _available(name):
            continue
        doc = read_results(name)
        key = "wt" if dataset == "wikitext2" else "pg"
        numbers[f"{key}_ar_tps"] = _mean(doc, "ar", "throughput")
        numbers[f"{key}_date"] = doc["environment"]["date"][:10]
        numbers[f"{key}_prompts"] = doc["protocol"]["num_prompts"]
        for label in doc["aggregates"]:
            slug = label.replace("+", "_").replace("-", "_")
            numbers[f"{key}_{slug}_speedup"] = _mean(doc, label, "speedup")
            numbers[f"{key}_{slug}_tau"] = _mean(doc, label, "tau")
        numbers[f"{key}_exact"] = "yes" if all(a["identical_to_ar"] for a in doc["aggregates"].values()) \
            else "NO"
        if dataset == "wikitext2":
            a = doc["aggregates"]["dynatree"]
            iterations = a["iterations"]["mean"]
            numbers["wt_dynatree_verify_ms"] = 1000 * a["time_verify"]["mean"] / iterations
            numbers["wt_dynatree_draft_ms"] = 1000 * a["time_draft"]["mean"] / iterations
            numbers["wt_dynatree_other_ms"] = 1000 * a["time_other"]["mean"] / iterations
            numbers["wt_dynatree_nodes"] = a["mean_tree_size"]["mean"]
            numbers["wt_dynatree_draft_forwards"] = a["draft_forwards"]["mean"] / iterations
            numbers["wt_ar_ms"] = 1000 * _mean(doc, "ar", "time_total") / _mean(doc, "ar", "new_tokens")
    if _available("costs_embedded_cpu.json"):
        costs = read_costs("costs_embedded_cpu.json")
        for weights in ("default", "packed"):
            curve = costs["curves"]["target"].get(weights)
            if curve:
                numbers[f"cost_{weights}_ms"] = 1000 * curve["1"]
                for n in ("4", "8", "16"):
                    numbers[f"cost_{weights}_r{n}"] = curve[n] / curve["1"]
        draft = costs["curves"]["draft"].get("packed") or costs["curves"]["draft"]["default"]
        target = costs["curves"]["target"].get("packed") or costs["curves"]["target"]["default"]
        numbers["cost_beta"] = draft["1"] / target["1"]
    if _available(SPEC_BENCH):
        doc = read_results(SPEC_BENCH)
        numbers["sb_per_group"] = doc["protocol"].get("per_group") or 80
        numbers["sb_prompts"] = doc["protocol"]["num_prompts"]
        numbers["sb_exact"] = "yes" if all(a["identical_to_ar"] for a in doc["aggregates"].values()) else "NO"
        for group, totals in doc["groups"].items():
            for label, t in totals.items():
                slug = label.replace("+", "_").replace("-", "_").replace(" ", "_").replace("=", "")
                numbers[f"sb_{group}_{slug}_speedup"] = t["speedup"]
                numbers[f"sb_{group}_{slug}_tau"] = t["tau"]
    return numbers


def readme_table() -> str:
    """The README's results table (markdown), from the main comparison and Spec-Bench files."""
    docs = {name: read_results(file) for name, file in
            (("WikiText-2", MAIN["wikitext2"]), ("PG-19", MAIN["pg19"]), ("Spec-Bench", SPEC_BENCH))
            if _available(file)}
    head = "| method | " + " | ".join(f"{name} speedup | τ" for name in docs) + " |"
    rows = [head, "| --- |" + " --- | --- |" * len(docs)]
    for label, name in TABLE_METHODS:
        cells = []
        for dataset, doc in docs.items():
            if dataset == "Spec-Bench":
                totals = doc["groups"]["overall"].get(label)
                cells += [f"{totals['speedup']:.2f}x", f"{totals['tau']:.2f}"] if totals else ["", ""]
            elif label in doc["aggregates"]:
                cells += [f"{_mean(doc, label, 'speedup'):.2f}x", f"{_mean(doc, label, 'tau'):.2f}"]
            else:
                cells += ["", ""]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = []
    for dataset, doc in docs.items():
        env, protocol = doc["environment"], doc["protocol"]
        exact = all(a["identical_to_ar"] for a in doc["aggregates"].values())
        notes.append(f"{dataset}: {protocol['num_prompts']} prompts, T = {protocol['max_new_tokens']}"
                     f"{' (stops at EOS)' if protocol['stop_at_eos'] else ''}, AR "
                     f"{_mean(doc, 'ar', 'throughput'):.1f} tokens/s, {env['date'][:10]}, "
                     f"every output identical to AR: {'yes' if exact else 'NO'}")
    return "\n".join(rows) + "\n\n" + "; ".join(notes) + "."
