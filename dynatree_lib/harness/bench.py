"""Benchmarks: the paper's protocol, peer baselines in the same run, validated JSON results.

A run takes a model pair, a prompt set and a list of named methods. After warm-up
prompts that are discarded, every measured prompt runs every method (the order
rotates from prompt to prompt, so machine drift favours no method) and records the
metrics of the book's notation table; aggregates are mean and std over prompts. Every
output is compared with our greedy AR output on the same prompt and gets a verdict
(identical, near-tie in half precision, mismatch); a divergence is recorded per prompt
and reported loudly, never averaged away. Methods run through ``runner.run_method``,
the same runner as ``compare``. Documents follow ``schemas/bench.schema.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from ..models.pairs import drafter_name
from .environment import environment
from .exactness import classify_divergence
from .repetition import copy_rate, self_repetition
from .runner import (
    HF_METHODS,
    OUR_METHODS,
    PROMPT_LOOKUP_TOKENS,
    MethodSpec,
    check_drafters,
    run_method,
    spec,
)
from .schema import validate as validate_schema

SCHEMA = "dynatree-bench/2"
__all__ = ["HF_METHODS", "OUR_METHODS", "PROMPT_LOOKUP_TOKENS", "MethodSpec", "spec", "run_benchmark",
           "read_results", "write_results", "validate", "format_table", "aggregate"]


METRICS = ("throughput", "speedup", "ttft", "tpot", "tau", "acceptance_rate", "tree_efficiency",
           "iterations", "target_forwards", "draft_forwards", "peak_memory_bytes", "time_total",
           "time_draft", "time_verify", "time_other", "mean_tree_size", "mean_lookup_nodes", "new_tokens",
           "self_repetition", "copy_rate", "controller_at_bound")


def judge(record: dict, ar: dict, target, input_ids: torch.Tensor) -> None:
    """Add the exactness verdict of ``record`` against the AR record of the same prompt."""
    divergence = classify_divergence(target, input_ids, ar["tokens"], record["tokens"])
    record["identical_to_ar"] = divergence is None
    record["verdict"] = "identical" if divergence is None else divergence.verdict
    if divergence is not None:
        record.update(divergence.as_record())


def run_benchmark(pair, prompts: list[list[int]], methods: list[MethodSpec], max_new_tokens: int,
                  warmup: int = 2, *, kind: str = "main", dataset: str = "", protocol: dict | None = None,
                  stop_at_eos: bool = False, progress: bool = True, sampling: dict | None = None) -> dict:
    """Run ``methods`` over ``prompts`` (the first ``warmup`` are discarded); returns the result document.

    ``sampling`` ({"temperature", "top_k", "top_p"}) samples instead of decoding greedily (every
    method seeded by the prompt's index); records then carry the verdict "sampled"."""
    if not any(m.kind == "ar" for m in methods):
        methods = [spec("ar"), *methods]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"method labels must be unique: {labels}")
    if len(prompts) <= warmup:
        raise ValueError(f"need more prompts ({len(prompts)}) than warm-up runs ({warmup})")
    check_drafters(pair, methods)
    records = []
    total = len(prompts) * len(methods)
    with tqdm(total=total, desc=f"bench {kind}", unit="run", disable=not progress) as bar:
        for index, ids in enumerate(prompts):
            input_ids = torch.tensor([ids], device=pair.device)
            shift = index % len(methods)
            order = methods[shift:] + methods[:shift]  # rotate: A B C, B C A, C A B, ...
            runs = {}
            for method in order:
                bar.set_postfix_str(method.label)
                runs[method.label] = run_method(method, pair, input_ids, max_new_tokens,
                                                stop_at_eos=stop_at_eos, sampling=sampling, seed=index)
                bar.update()
            if index < warmup:
                continue
            records.extend(score_prompt(runs, methods, pair.target, input_ids, index - warmup,
                                        sampled=sampling is not None))
    doc = {"schema": SCHEMA, "kind": kind, "environment": environment(pair.device, pair.dtype),
           "pair": pair_description(pair), "dataset": dataset,
           "protocol": {"num_prompts": len(prompts) - warmup, "warmup": warmup,
                        "max_new_tokens": max_new_tokens, "stop_at_eos": stop_at_eos, "command": "",
                        **({"sampling": sampling} if sampling else {}), **(protocol or {})},
           "methods": [asdict(m) for m in methods], "records": records,
           "aggregates": aggregate(records, labels)}
    return validate(doc)


def score_prompt(runs: dict[str, dict], methods: list[MethodSpec], target, input_ids: torch.Tensor,
                 prompt_index: int, sampled: bool = False) -> list[dict]:
    """The records of one measured prompt: verdicts and speedups against the AR run on it
    (sampled runs have no token-level verdict: their check is the distribution tests)."""
    ar = next(runs[m.label] for m in methods if m.kind == "ar")
    out = []
    for method in methods:
        record = runs[method.label]
        record.update(prompt_index=prompt_index, prompt_tokens=input_ids.shape[1], method=method.label,
                      speedup=record["throughput"] / ar["throughput"],
                      self_repetition=self_repetition(record["tokens"]),
                      copy_rate=copy_rate(input_ids[0].tolist(), record["tokens"]))
        if sampled:
            record.update(verdict="sampled", identical_to_ar=None)
            out.append(record)
            continue
        judge(record, ar, target, input_ids)
        if record["verdict"] != "identical":
            print(f"WARNING: {method.label} differs from greedy AR on prompt {prompt_index} at new token "
                  f"{record['first_divergence']} ({record['verdict']})", file=sys.stderr)
        out.append(record)
    return out


def pair_description(pair) -> dict:
    """What a results file records of the pair: its models and its drafters by name."""
    head = pair.drafters.get("head")
    return {"name": pair.name, "target": drafter_name(pair.target), "draft": drafter_name(pair.draft),
            "head": None if head is None else head.name, "default_drafter": pair.default_drafter,
            "drafters": {name: drafter_name(d) for name, d in pair.drafters.items()},
            "packed_weights": bool(pair.packed),
            **({"dtype_choice": pair.dtype_choice} if getattr(pair, "dtype_choice", None) else {})}


def aggregate(records: list[dict], labels: list[str]) -> dict:
    """{label: {metric: {"mean", "std"}, "identical_to_ar": all, "mismatches": n, "near_ties": n}}."""
    out = {}
    for label in labels:
        rows = [r for r in records if r["method"] == label]
        sampled = any(r["verdict"] == "sampled" for r in rows)
        entry = {"prompts": len(rows),
                 "identical_to_ar": None if sampled else all(r["identical_to_ar"] for r in rows),
                 "mismatches": sum(r["verdict"] == "mismatch" for r in rows),
                 "near_ties": sum(r["verdict"] == "near-tie" for r in rows)}
        for metric in METRICS:
            values = [r[metric] for r in rows if r.get(metric) is not None]
            if values:
                entry[metric] = {"mean": statistics.mean(values),
                                 "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        out[label] = entry
    return out


def validate(doc: dict) -> dict:
    """Raise ValueError unless ``doc`` follows ``schemas/bench.schema.json`` and its labels agree."""
    validate_schema(doc, SCHEMA)
    labels = {m["label"] for m in doc["methods"]}
    for i, record in enumerate(doc["records"]):
        if record["method"] not in labels:
            raise ValueError(f"results: record {i} names unknown method {record['method']!r}")
    if set(doc["aggregates"]) != labels:
        raise ValueError("results: aggregates do not cover exactly the methods")
    return doc


def write_results(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    validate(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def read_results(path: str | Path) -> dict:
    """A validated results document; a bare file name is looked up in ``resources.results_dirs()``."""
    from .resources import result_file

    path = Path(path)
    if not path.exists() and path.parent == Path("."):
        path = result_file(path.name)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read results file {path}: {error}") from error
    try:
        return validate(doc)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def format_table(doc: dict) -> str:
    """Mean (and std) per method: the main comparison as text."""
    head = f"{'method':<22}{'exact':>6}{'tok/s':>16}{'speedup':>9}{'tau':>7}{'accept':>8}{'TTFT ms':>9}"
    lines = [head]
    for label, a in doc["aggregates"].items():
        tput = a.get("throughput", {})

        def mean(name, scale=1.0, a=a):
            return a[name]["mean"] * scale if name in a else float("nan")

        exact = ("n/a" if a["identical_to_ar"] is None  # sampled: checked in distribution, not here
                 else "yes" if a["identical_to_ar"] else "tie" if not a["mismatches"] else "NO")
        lines.append(f"{label:<22}{exact:>6}"
                     f"{tput.get('mean', 0):>9.1f} ±{tput.get('std', 0):>5.1f}{mean('speedup'):>8.2f}x"
                     f"{mean('tau'):>7.2f}{mean('acceptance_rate'):>8.2f}{mean('ttft', 1000):>9.1f}")
    return "\n".join(lines)


# ---- method sets of the experiments ------------------------------------------------------------

# Named variants usable in --methods next to the method kinds.
VARIANTS = {"dynatree+lookup": ("dynatree", {"lookup": PROMPT_LOOKUP_TOKENS}),
            "default": ("dynatree", {"lookup": PROMPT_LOOKUP_TOKENS, "measure_costs": True}),
            "dynatree-paper": ("dynatree", {"controller": "paper"})}

OFF = 1e-6  # a probability threshold low enough to switch a rule off

# Leave-one-out from the default: each rule, and each source of candidates, removed in turn.
DEFAULT = VARIANTS["default"][1]
LEAVE_ONE_OUT = {
    # every node gets B_mid children, whatever the draft's confidence
    "default-breadth": {"min_branch": 2, "mid_branch": 2, "max_branch": 2},
    # no path-probability gates: every branch grows to D_0 and stops there (pruning stays)
    "default-depth": {"rho_stop": OFF, "rho_deep": 1.0},
    # no probability pruning, priced or not: only the gates and N_max limit the tree
    "default-pruning": {"threshold": 0.0},
    # D_0 stays 5 (the priced threshold comes from the controller, so epsilon = 0.05 stays)
    "default-history": {"adapt": False},
    # the controller keeps its constant draft cost and epsilon (= dynatree+lookup)
    "default-pricing": {"measure_costs": False},
    # the drafter alone
    "default-lookup": {"lookup": 0},
}
VARIANTS.update({name: ("dynatree", {**DEFAULT, **change}) for name, change in LEAVE_ONE_OUT.items()})


def parse_methods(names: str) -> list[MethodSpec]:
    """``"ar,hf,linear,dynatree"`` -> specs with each method's default configuration;
    ``dynatree+lookup``: DynaTree with the context-lookup extension (m = 10); ``default``: the
    library's default, ``default-<rule>`` it with one rule or source removed (``LEAVE_ONE_OUT``);
    ``kind:key=value:...``
    sets fields, e.g. ``fixed:depth=3:branch=2:threshold=0.05`` (labelled as in the sweep); a
    suffix ``@<name>`` drafts with the pair's drafter of that name (``@head``: the feature head,
    ``@model``: the causal-LM draft; without one: the pair's default drafter)."""
    specs = []
    for name in (n.strip() for n in names.split(",")):
        name, _, drafter = name.partition("@")
        if drafter:
            if not drafter.isidentifier():
                raise ValueError(f"method {name}@{drafter}: a drafter suffix names one of the pair's "
                                 "drafters, e.g. @head or @model")
            (base,) = parse_methods(name)
            specs.append(spec(base.kind, f"{base.label}@{drafter}", drafter, **base.config))
            continue
        if name in VARIANTS:
            kind, config = VARIANTS[name]
            specs.append(spec(kind, name, **config))
        elif ":" in name:
            kind, *items = name.split(":")
            config = {}
            for item in items:
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"method {name!r}: expected kind:key=value:...")
                config[key] = _number(value)
            label = (f"fixed D={config.get('depth')} B={config.get('branch')} t={config.get('threshold'):g}"
                     if kind == "fixed" and {"depth", "branch", "threshold"} <= set(config) else name)
            specs.append(spec(kind, label, **config))
        elif name:
            specs.append(spec(name))
    return specs


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def fixed_grid(depths: list[int], branches: list[int], thresholds: list[float],
               max_nodes: int = 256) -> list[MethodSpec]:
    return [spec("fixed", f"fixed D={d} B={b} t={t:g}", depth=d, branch=b, threshold=t, max_nodes=max_nodes)
            for d in depths for b in branches for t in thresholds]


def sensitivity_specs() -> list[MethodSpec]:
    """DynaTree around its defaults: confidence thresholds, branch bounds, depth ranges."""
    specs = [spec("dynatree", "dynatree default")]
    for high, low in ((0.95, 0.5), (0.8, 0.3), (0.7, 0.2), (0.6, 0.1)):
        specs.append(spec("dynatree", f"θ_high={high:g} θ_low={low:g}", theta_high=high,
                          theta_low=low))
    for lo, mid, hi in ((1, 1, 2), (1, 2, 4), (2, 3, 4)):
        specs.append(spec("dynatree", f"B_min/mid/max={lo}/{mid}/{hi}", min_branch=lo, mid_branch=mid,
                          max_branch=hi))
    for base, top in ((3, 6), (4, 10), (6, 12)):
        specs.append(spec("dynatree", f"D_0={base} D_max={top}", base_depth=base, max_depth=top))
    return specs


def ablation_specs(depth: int = 8, branch: int = 3, threshold: float = 0.05,
                   max_nodes: int = 256) -> list[MethodSpec]:
    """DynaTree's rules added one at a time to a fixed tree with the same limits (D_max, B_max,
    N_max): fixed tree -> + dynamic breadth -> + dynamic depth -> + pruning (epsilon) ->
    + history adaptation, the goodput controller (DynaTree's default) and the paper's."""
    limits = dict(max_depth=depth, max_branch=branch, max_nodes=max_nodes)
    no_gate = dict(base_depth=depth, rho_stop=OFF, rho_deep=OFF)  # every node expands to D_max
    return [spec("fixed", "fixed tree", depth=depth, branch=branch, threshold=OFF, max_nodes=max_nodes),
            spec("dynatree", "+ dynamic breadth", **limits, **no_gate, threshold=OFF, adapt=False),
            spec("dynatree", "+ dynamic depth", **limits, threshold=OFF, adapt=False),
            spec("dynatree", "+ pruning", **limits, threshold=threshold, adapt=False),
            spec("dynatree", "+ history (goodput)", **limits, threshold=threshold),
            spec("dynatree", "+ history (paper)", **limits, threshold=threshold, controller="paper")]


def linear_grid(ks: list[int]) -> list[MethodSpec]:
    return [spec("linear", f"linear k={k}", k=k) for k in ks]
