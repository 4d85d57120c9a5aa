"""Every measured number the book's prose and the README's table state, computed from results files.

The chapters glue these values into their text (``myst_nb.glue``) and
``scripts/update_readme.py`` writes :func:`readme_table` into README.md; a test recomputes
both from the committed files and fails when a chapter or the README disagrees with them
(a results file changed and nobody re-executed the chapter or regenerated the table).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from ..harness.bench import SCHEMA as BENCH_SCHEMA
from ..harness.bench import read_results
from ..harness.costs import COSTS_SCHEMA, read_costs
from ..harness.environment import result_name
from ..harness.paired import paired_difference
from ..harness.repetition import self_repetition
from ..harness.resources import find_results
from ..models.pairs import DRAFTER_TITLES

# The files the book reads: named as the CLI names them (harness.environment.result_name).
MAIN = {dataset: result_name("main", dataset, "embedded", "cpu") for dataset in ("wikitext2", "pg19")}
SPEC_BENCH = result_name("spec_bench", "embedded", "cpu")
COSTS = result_name("costs", "embedded", "cpu")
DRAFT_QUALITY = result_name("embedded", "draft_quality")
ABLATION = result_name("ablation", "wikitext2", "embedded", "cpu")
SENSITIVITY = result_name("sensitivity", "wikitext2", "embedded", "cpu")
SCALING_LENGTH = result_name("scaling_length", "wikitext2", "embedded", "cpu", suffix="_T*")
SCALING_PROMPT = result_name("scaling_prompt", "wikitext2", "embedded", "cpu", suffix="_P*")
# bfloat16 on the CPU (``--dtype bfloat16``): its own runs, checked against the bfloat16 target
BF16 = {"costs": result_name("costs", "embedded", "cpu", suffix="_bfloat16"),
        "sb": result_name("spec_bench", "embedded", "cpu", suffix="_bfloat16"),
        "wt": result_name("main", "wikitext2", "embedded", "cpu", suffix="_bfloat16"),
        "dtype": "dtype_spec_bench_embedded_cpu.json"}  # scripts/dtype_bench.py
HEAD_TRAINING = "head_training.json"            # python -m dynatree_lib.train.head
HEAD_BENCH = "head_bench_embedded_cpu.json"    # scripts/head_bench.py: two heads in one run
HEAD_CHAT = "head_chat_agreement.json"         # scripts/head_chat_agreement.py: by depth, chat answers
EARLY_EXIT = "early_exit_probe.json"           # scripts/early_exit_probe.py: self-speculative drafts
# one tree, two sources (issue 34): the default against prompt lookup and the paper's DynaTree,
# each command run twice (``_rerun``: the run-to-run drift), and the leave-one-out ablation
MULTISOURCE = {"sb": "multisource_spec_bench_embedded_cpu.json",
               "wt": "multisource_wikitext2_embedded_cpu.json",
               "sampling": "multisource_sampling_spec_bench_embedded_cpu_temperature0.7.json"}
MULTISOURCE_PG19 = "multisource_pg19_embedded_cpu.json"
RERUN = {key: name.replace(".json", "_rerun.json") for key, name in MULTISOURCE.items()
         if key != "sampling"}
LEAVE_ONE_OUT = {"sb": "leave_one_out_spec_bench_embedded_cpu.json",
                 "wt": "leave_one_out_wikitext2_embedded_cpu.json"}
# the rules and sources the leave-one-out removes (harness.bench.LEAVE_ONE_OUT), in reading order
REMOVED = (("breadth", "dynamic breadth"), ("depth", "dynamic depth (the p(u) gates)"),
           ("pruning", "pruning (ε or its priced bar)"), ("history", "history adaptation"),
           ("pricing", "measured prices"), ("lookup", "context lookup (the second source)"))
LADDER = ("fixed tree", "+ dynamic breadth", "+ dynamic depth", "+ pruning", "+ history (goodput)")
TABLE_METHODS = (("hf", "HF `generate` greedy"), ("hf-assisted", "HF assisted generation (draft model)"),
                 ("prompt-lookup", "HF prompt lookup"),
                 ("linear@model", "Linear (k = 8), draft model"),
                 ("fixed@model", "FixedTree (8, 3, 0.1), draft model"),
                 ("dynatree@model", "DynaTree, draft model"),
                 ("dynatree+lookup@model", "DynaTree + lookup, draft model"),
                 ("linear@head", "Linear (k = 8), feature head"),
                 ("fixed@head", "FixedTree (8, 3, 0.1), feature head"),
                 ("dynatree@head", "DynaTree, feature head (chapter 7)"),
                 ("dynatree+lookup@head", "**DynaTree + lookup, feature head** (the default)"))


def slug(label: str) -> str:
    """A method label as part of a number's name: ``dynatree+lookup@head`` -> ``dynatree_lookup_head``."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _mean(doc: dict, label: str, metric: str) -> float:
    return doc["aggregates"][label][metric]["mean"]


def _controller(doc: dict, label: str) -> str:
    """Which history controller a file's DynaTree ran with (files written before the choice
    existed record no ``controller`` field: they ran the paper's rule)."""
    config = next(m["config"] for m in doc["methods"] if m["label"] == label)
    name = config.get("controller", "paper")
    return "the paper's controller" if name == "paper" else f"the {name} controller"


def ar_self_repetition(doc: dict) -> float:
    """Mean self-repetition of AR's outputs in a file, from the records' tokens (so files
    written before records carried the field count too)."""
    loops = [self_repetition(r["tokens"]) for r in doc["records"] if r["method"] == "ar"]
    loops = [x for x in loops if x is not None]
    return sum(loops) / len(loops)


def _available(name: str) -> bool:
    return bool(find_results(name))


Numbers = dict[str, float | str]
EXTRACTORS: list[tuple[tuple[str, ...], Callable[..., Numbers]]] = []


def extracts(*names: str):
    """Register an extractor of the result files ``names``: it is given each file's document,
    in order, and runs only when all of them exist. A name with ``*`` gives the list of every
    matching document (by file name), and needs at least one."""
    def add(extract: Callable[..., Numbers]) -> Callable[..., Numbers]:
        EXTRACTORS.append((names, extract))
        return extract
    return add


def load(path) -> dict:
    """A result file's document, validated when it follows a schema of the harness."""
    doc = json.loads(path.read_text())
    if doc.get("schema") == BENCH_SCHEMA:
        return read_results(path)
    if doc.get("schema") == COSTS_SCHEMA:
        return read_costs(path)
    return doc


def book_numbers() -> Numbers:
    """{name: value} of every number the chapters cite from ``results/``: what each registered
    extractor computes from the files it reads (files missing: its numbers are absent)."""
    numbers: Numbers = {}
    for names, extract in EXTRACTORS:
        docs = []
        for name in names:
            found = find_results(name)
            if not found:
                break
            docs.append([load(path) for path in found] if "*" in name else load(found[0]))
        else:
            numbers.update(extract(*docs))
    return numbers


def main_numbers(doc: dict, key: str) -> Numbers:
    """``{key}_*``: a main comparison's AR speed, each method's speedup and tau, exactness and the
    paired intervals of the head against the draft model and of DynaTree against HF assisted."""
    numbers: Numbers = {f"{key}_ar_tps": _mean(doc, "ar", "throughput"),
                        f"{key}_date": doc["environment"]["date"][:10],
                        f"{key}_prompts": doc["protocol"]["num_prompts"],
                        f"{key}_self_repetition": ar_self_repetition(doc)}
    if "dynatree@model" in doc["aggregates"]:
        numbers[f"{key}_controller"] = _controller(doc, "dynatree@model")
    for label in doc["aggregates"]:
        numbers[f"{key}_{slug(label)}_speedup"] = _mean(doc, label, "speedup")
        if "controller_at_bound" in doc["aggregates"][label]:
            numbers[f"{key}_{slug(label)}_at_bound"] = _mean(doc, label, "controller_at_bound")
        numbers[f"{key}_{slug(label)}_tau"] = _mean(doc, label, "tau")
    numbers[f"{key}_exact"] = "yes" if all(a["identical_to_ar"] for a in doc["aggregates"].values()) else "NO"
    drafters = {"head_model": ("dynatree@head", "dynatree@model"),
                "assisted": ("dynatree@model", "hf-assisted")}   # the same draft, tree vs HF's chain
    numbers.update(paired_numbers(doc, f"{key}_pair", drafters))
    return numbers


@extracts(MAIN["wikitext2"])
def wikitext_numbers(doc: dict) -> Numbers:
    """WikiText-2's main comparison, with DynaTree's time per iteration by phase."""
    numbers = main_numbers(doc, "wt")
    for label in ("dynatree@model", "dynatree@head"):
        if label not in doc["aggregates"]:
            continue
        a, name = doc["aggregates"][label], f"wt_{slug(label)}"
        iterations = a["iterations"]["mean"]
        numbers[f"{name}_verify_ms"] = 1000 * a["time_verify"]["mean"] / iterations
        numbers[f"{name}_draft_ms"] = 1000 * a["time_draft"]["mean"] / iterations
        numbers[f"{name}_other_ms"] = 1000 * a["time_other"]["mean"] / iterations
        numbers[f"{name}_nodes"] = a["mean_tree_size"]["mean"]
        numbers[f"{name}_draft_forwards"] = a["draft_forwards"]["mean"] / iterations
        numbers[f"{name}_acceptance"] = a["acceptance_rate"]["mean"]
    numbers["wt_ar_ms"] = 1000 * _mean(doc, "ar", "time_total") / _mean(doc, "ar", "new_tokens")
    return numbers


@extracts(MAIN["pg19"])
def pg19_numbers(doc: dict) -> Numbers:
    return main_numbers(doc, "pg")


@extracts(DRAFT_QUALITY)
def draft_quality_numbers(report: dict) -> Numbers:
    """``dq_*``: the draft report, the draft model's and (if present) the head's."""
    numbers: Numbers = {"dq_model_agreement": report["teacher_forced_agreement"],
                        "dq_model_cost": report["cost"]["ratio"],
                        "dq_model_linear_acceptance": report["linear_acceptance"]["per_token"]}
    if "head" in report:
        for depth, value in enumerate(report["head"]["agreement"]["by_depth"], 1):
            numbers[f"dq_head_agreement_{depth}"] = value
        numbers["dq_head_cost"] = report["head"]["cost"]["ratio"]
        numbers["dq_head_linear_acceptance"] = report["head"]["linear_acceptance"]["per_token"]
    return numbers


@extracts(HEAD_TRAINING)
def head_curve_numbers(curve: dict) -> Numbers:
    """``ht_*``: the head's training run, its minutes and held-out agreement at the end."""
    numbers: Numbers = {"ht_minutes": curve["total_seconds"] / 60, "ht_steps": curve["meta"]["steps"],
                        "ht_steps_done": curve["meta"].get("steps_done", curve["meta"]["steps"]),
                        "ht_positions": curve["meta"]["training_positions"]}
    for depth, value in enumerate(curve["curve"][-1]["agreement"], 1):
        numbers[f"ht_heldout_agreement_{depth}"] = value
    numbers.update(head_training_numbers(curve))
    return numbers


@extracts(COSTS)
def cost_numbers(costs: dict) -> Numbers:
    """``cost_*``: the forward-cost curves r(n), packed and not, and the draft's share beta."""
    numbers: Numbers = {}
    for weights in ("default", "packed"):
        curve = costs["curves"]["target"].get(weights)
        if curve:
            numbers[f"cost_{weights}_ms"] = 1000 * curve["1"]
            for n in ("2", "4", "8", "16", "64"):
                numbers[f"cost_{weights}_r{n}"] = curve[n] / curve["1"]
    if "packed" in costs["curves"]["target"]:
        numbers["cost_default_over_packed"] = numbers["cost_default_ms"] / numbers["cost_packed_ms"]
    draft = costs["curves"]["draft"].get("packed") or costs["curves"]["draft"]["default"]
    target = costs["curves"]["target"].get("packed") or costs["curves"]["target"]["default"]
    numbers["cost_beta"] = draft["1"] / target["1"]
    for weights, curve in costs["curves"]["draft"].items():   # packing need not help the draft
        numbers[f"cost_draft_{weights}_ms"] = 1000 * curve["1"]
    numbers["cost_repeats"] = costs["repeats"]
    rmin_n = min(target, key=target.get)
    numbers["cost_packed_rmin"] = target[rmin_n] / target["1"]
    numbers["cost_packed_rmin_n"] = int(rmin_n)
    numbers["cost_rn_note"] = (
        f"With packed weights r(n) falls below 1 for small n in this file: a forward of {rmin_n} "
        f"tokens took {target[rmin_n] / target['1']:.2f} of a one-token step. The one-token forward "
        "is a matrix–vector product, the others small matrix–matrix products, and the packed "
        "kernels can serve the latter better; we have not traced which kernels oneDNN picks. AR "
        "pays the one-token cost on every token, so there a small tree costs less than an AR step."
        if target[rmin_n] < target["1"] else
        "In this file r(n) ≥ 1 at every n: no forward over several tokens was cheaper than a "
        "one-token step. (The file of 2026-12-02, measured on another CPU of this project's "
        "machines with 5 timed forwards per point, had r(n) dip below 1 for 3-8 tokens.)")
    return numbers


@extracts(SENSITIVITY)
def sensitivity_numbers(doc: dict) -> Numbers:
    """``se_*``: DynaTree's settings around its defaults, the range of their speedups."""
    variants = [m for m in doc["aggregates"] if m != "ar"]
    return {"se_prompts": doc["protocol"]["num_prompts"],
            "se_controller": _controller(doc, "dynatree default"),
            "se_default_speedup": _mean(doc, "dynatree default", "speedup"),
            "se_min_speedup": min(_mean(doc, m, "speedup") for m in variants),
            "se_max_speedup": max(_mean(doc, m, "speedup") for m in variants),
            "se_best": max(variants, key=lambda m: _mean(doc, m, "speedup"))}


@extracts(SCALING_LENGTH)
def scaling_length_numbers(docs: list[dict]) -> Numbers:
    """``sl_*``: DynaTree's speedup at the shortest and the longest generation."""
    docs = sorted(docs, key=lambda d: d["protocol"]["max_new_tokens"])
    short, long = _mean(docs[0], "dynatree", "speedup"), _mean(docs[-1], "dynatree", "speedup")
    return {"sl_prompts": docs[0]["protocol"]["num_prompts"],
            "sl_controller": _controller(docs[0], "dynatree"),
            "sl_short_T": docs[0]["protocol"]["max_new_tokens"],
            "sl_long_T": docs[-1]["protocol"]["max_new_tokens"],
            "sl_short_dynatree_speedup": short, "sl_long_dynatree_speedup": long,
            "sl_trend": "rises" if long > short else "falls"}


@extracts(SCALING_PROMPT)
def scaling_prompt_numbers(docs: list[dict]) -> Numbers:
    """``sp_*``: the range of DynaTree's speedup over prompt lengths."""
    speedups = [_mean(d, "dynatree", "speedup") for d in docs]
    return {"sp_prompts": docs[0]["protocol"]["num_prompts"], "sp_min_dynatree_speedup": min(speedups),
            "sp_max_dynatree_speedup": max(speedups)}


@extracts(SPEC_BENCH)
def spec_bench_numbers(doc: dict) -> Numbers:
    """``sb_*``: Spec-Bench by task group, exactness, paired intervals against the baselines."""
    numbers: Numbers = {"sb_per_group": doc["protocol"].get("per_group") or 80,
                        "sb_prompts": doc["protocol"]["num_prompts"],
                        "sb_exact": "yes" if all(a["identical_to_ar"] for a in doc["aggregates"].values())
                        else "NO"}
    for group, totals in doc["groups"].items():
        for label, t in totals.items():
            numbers[f"sb_{group}_{slug(label)}_speedup"] = t["speedup"]
            numbers[f"sb_{group}_{slug(label)}_tau"] = t["tau"]
        numbers[f"sb_{group}_copy_rate"] = totals["ar"]["copy_rate"]
        numbers[f"sb_{group}_self_repetition"] = totals["ar"]["self_repetition"]
    for label, a in doc["aggregates"].items():
        if "controller_at_bound" in a:
            numbers[f"sb_{slug(label)}_at_bound"] = a["controller_at_bound"]["mean"]
    numbers.update(paired_numbers(doc, "sb_pair", SPEC_BENCH_PAIRS))
    return numbers


@extracts()
def bench_head_numbers() -> Numbers:
    """``bench_head``: which feature head the main files measured, for chapter 7."""
    docs = [load(find_results(f)[0]) for f in (*MAIN.values(), SPEC_BENCH) if _available(f)]
    if not any(doc["pair"].get("head") for doc in docs):
        return {}
    earlier = earlier_heads(docs)
    return {"bench_head": "the committed head" if not earlier else
            "an earlier head (" + ", ".join(f"@{h}" for h in earlier) + ")"}


def head_training_numbers(curve: dict) -> dict[str, float | str]:
    """The continued runs (``--init-from``), one per warm start: ``ht_c<k>_from``/``_to`` (steps)
    and held-out agreement by source at each run's start and end (``ht_c<k>_start_<source>_<depth>``,
    ``ht_c<k>_end_...``; each run measures its own held-out rows), and the last run's mix."""
    numbers: dict[str, float | str] = {}
    points = curve["curve"]
    warm = [i for i, p in enumerate(points) if p.get("start") == "warm"]
    for k, first in enumerate(warm, 1):
        last = (warm[k] - 1) if k < len(warm) else len(points) - 1
        numbers[f"ht_c{k}_from"], numbers[f"ht_c{k}_to"] = points[first]["step"], points[last]["step"]
        for edge, point in (("start", points[first]), ("end", points[last])):
            for source, by_depth in point["agreement_by_source"].items():
                for depth, value in enumerate(by_depth, 1):
                    numbers[f"ht_c{k}_{edge}_{slug(source)}_{depth}"] = value
    if warm:
        numbers["ht_runs"] = len(warm) + 1
        numbers["ht_short_chat"] = curve["meta"].get("short_chat", 0)
        numbers["ht_instructions"] = curve["meta"].get("instructions", 0)
        numbers["ht_chat_share"] = curve["meta"].get("chat_share") or 0.0
    return numbers


@extracts(HEAD_CHAT)
def head_chat_numbers(doc: dict) -> Numbers:
    """``hc_<head>_{chat,wt}_<depth>``: each head's agreement by depth on the target's own answers
    to held-out Spec-Bench questions and on WikiText-2 test, ``hc_<head>_<group>_<depth>`` per
    task group; the questions and answer positions scored."""
    numbers: Numbers = {"hc_questions": len(doc["questions"]),
                        "hc_positions": sum(doc["answer_positions"].values())}
    for name, head in doc["heads"].items():
        for depth, value in enumerate(head["chat_by_depth"], 1):
            numbers[f"hc_{slug(name)}_chat_{depth}"] = value
        for depth, value in enumerate(head["wikitext2_by_depth"], 1):
            numbers[f"hc_{slug(name)}_wt_{depth}"] = value
        for group, by_depth in head["chat_by_group"].items():
            for depth, value in enumerate(by_depth, 1):
                numbers[f"hc_{slug(name)}_{slug(group)}_{depth}"] = value
    return numbers


@extracts(HEAD_BENCH)
def head_bench_numbers(doc: dict) -> Numbers:
    """``hb_<workload>_<method>_{speedup,low,high,tau}`` and, for a new-head method, its paired
    difference over the baseline head (``..._gain``, ``_gain_low``, ``_gain_high``)."""
    numbers: dict[str, float | str] = {"hb_identical": "yes" if all(
        r["identical"] for r in doc["records"]) else "NO"}
    numbers["hb_questions"] = len({r["question_id"] for r in doc["records"] if r["workload"] == "spec_bench"})
    numbers["hb_baseline_step"] = doc["heads"]["baseline"]["meta"].get("steps_done", 0)
    for workload, rows in doc["summary"].items():
        key = "sb" if workload == "spec_bench" else "wt"
        for label, s in rows.items():
            name = f"hb_{key}_{slug(label.replace(' head)', ')'))}"
            for field in ("speedup", "low", "high", "tau"):
                numbers[f"{name}_{field}"] = s[field]
            if "over_baseline" in s:
                gain = s["over_baseline"]
                numbers.update({f"{name}_gain": gain["mean"], f"{name}_gain_low": gain["low"],
                                f"{name}_gain_high": gain["high"], f"{name}_gain_verdict": gain["verdict"]})
    return numbers


@extracts(EARLY_EXIT)
def early_exit_numbers(doc: dict) -> Numbers:
    """``ee_l<layer>_{top1,cost,linear}`` per exit layer and the trained drafters' best linear."""
    numbers: dict[str, float | str] = {"ee_layers": doc["agreement"]["of"]}
    for row in doc["exits"]:
        name = f"ee_l{row['layer']}"
        numbers.update({f"{name}_top1": row["top1"], f"{name}_cost": row["cost"],
                        f"{name}_linear": row["best_linear"]["speedup"]})
    numbers["ee_best_linear"] = max(row["best_linear"]["speedup"] for row in doc["exits"])
    for drafter, row in doc["trained"].items():
        numbers[f"ee_{slug(drafter)}_linear"] = row["best_linear"]["speedup"]
    hf = doc.get("hf_assistant_early_exit")
    if hf:
        numbers["ee_hf_prompts"] = hf["prompts"]
        same = all(r["identical"] == hf["prompts"] for r in hf["exits"])
        numbers["ee_hf_identical"] = "yes" if same else "NO"
        for row in hf["exits"]:
            numbers[f"ee_hf_l{row['layer']}_speedup"] = row["speedup"]
    return numbers


def verdict_counts(doc: dict) -> dict[str, int]:
    """{identical, near-tie, mismatch: records} over a file's methods other than AR."""
    counts = {"identical": 0, "near-tie": 0, "mismatch": 0}
    for record in doc["records"]:
        if record["method"] != "ar":
            counts[record["verdict"]] += 1
    return counts


@extracts(BF16["costs"])
def bf16_cost_numbers(costs: dict) -> Numbers:
    """``bf_*``: bfloat16 against float32 on this CPU. Step costs come from one run
    (``costs --dtype bfloat16``)."""
    numbers: Numbers = {}
    for role in ("target", "draft"):
        fp32, bf16 = costs["curves"][role].get("packed") or costs["curves"][role]["default"], \
            costs["curves"][role]["bfloat16"]
        numbers[f"bf_{role}_fp32_ms"], numbers[f"bf_{role}_bf16_ms"] = 1000 * fp32["1"], 1000 * bf16["1"]
        for n in ("8", "16", "32"):
            numbers[f"bf_{role}_fp32_r{n}"] = fp32[n] / fp32["1"]
            numbers[f"bf_{role}_bf16_r{n}"] = bf16[n] / bf16["1"]
            numbers[f"bf_{role}_bf16_over_fp32_n{n}"] = bf16[n] / fp32[n]
        numbers[f"bf_{role}_bf16_over_fp32_n1"] = bf16["1"] / fp32["1"]
    numbers["bf_costs_prefix"] = costs["prefix_len"]
    return numbers


def bf16_bench_numbers(doc: dict, key: str) -> Numbers:
    """``bf_{key}_*``: a bfloat16 benchmark; speedups over the bfloat16 AR of the same run,
    verdicts against the bfloat16 target's own greedy output."""
    numbers: Numbers = {f"bf_{key}_prompts": doc["protocol"]["num_prompts"],
                        f"bf_{key}_ar_tps": _mean(doc, "ar", "throughput")}
    counts = verdict_counts(doc)
    for verdict, count in counts.items():
        numbers[f"bf_{key}_{slug(verdict)}"] = count
    numbers[f"bf_{key}_speculative"] = sum(counts.values())
    margins = [r["margin"] for r in doc["records"]  # how far below the judge's top logit
               if r["method"] != "ar" and r["verdict"] != "identical" and r["margin"] is not None]
    if margins:
        numbers[f"bf_{key}_max_margin"] = max(margins)
    for label in doc["aggregates"]:
        if key == "sb":
            totals = doc["groups"]["overall"][label]
            numbers[f"bf_sb_{slug(label)}_speedup"], numbers[f"bf_sb_{slug(label)}_tau"] = \
                totals["speedup"], totals["tau"]
        else:
            numbers[f"bf_wt_{slug(label)}_speedup"] = _mean(doc, label, "speedup")
            numbers[f"bf_wt_{slug(label)}_tau"] = _mean(doc, label, "tau")
    return numbers


extracts(BF16["sb"])(lambda doc: bf16_bench_numbers(doc, "sb"))
extracts(BF16["wt"])(lambda doc: bf16_bench_numbers(doc, "wt"))


@extracts(BF16["dtype"])
def dtype_bench_numbers(doc: dict) -> Numbers:
    """``dt_*``: scripts/dtype_bench.py, both dtypes on the same questions in one run."""
    numbers: Numbers = {"dt_questions": doc["questions"]}
    for label, s in doc["summary"].items():
        for field in ("speedup", "low", "high", "tau"):
            numbers[f"dt_{slug(label)}_{field}"] = s[field]
    numbers["dt_ar_departs"] = doc["summary"]["ar bfloat16"]["departs_from_float32"]
    bf16 = [s["verdicts"] for label, s in doc["summary"].items()
            if label.endswith(" bfloat16") and not label.startswith("ar ")]
    for verdict in ("identical", "near-tie", "mismatch"):
        numbers[f"dt_bf16_{slug(verdict)}"] = sum(v[verdict] for v in bf16)
    numbers["dt_bf16_speculative"] = sum(sum(v.values()) for v in bf16)
    return numbers


def best_of(doc: dict, prefix: str) -> str:
    """The label starting with ``prefix`` (a sweep's trees, Linear's k) of highest mean speedup."""
    return max((m for m in doc["aggregates"] if m.startswith(prefix)), key=lambda m: _mean(doc, m, "speedup"))


@extracts(ABLATION)
def ablation_numbers(doc: dict) -> Numbers:
    """The ablation file: each rule's step with its paired interval, the tuned baselines, the
    controllers' time at their bounds (names ``ab_*``)."""
    numbers: dict[str, float | str] = {
        "ab_prompts": doc["protocol"]["num_prompts"],
        "ab_drafter": DRAFTER_TITLES[doc["pair"]["default_drafter"]]}
    for label in doc["aggregates"]:
        if label == "ar":
            continue
        key = f"ab_{slug(label)}"
        numbers[f"{key}_speedup"] = _mean(doc, label, "speedup")
        numbers[f"{key}_tau"] = _mean(doc, label, "tau")
        if "iterations" in doc["aggregates"][label]:
            iterations = _mean(doc, label, "iterations")
            numbers[f"{key}_draft_forwards"] = _mean(doc, label, "draft_forwards") / iterations
        if "mean_tree_size" in doc["aggregates"][label]:
            numbers[f"{key}_nodes"] = _mean(doc, label, "mean_tree_size")
        if "controller_at_bound" in doc["aggregates"][label]:
            numbers[f"{key}_at_bound"] = _mean(doc, label, "controller_at_bound")
    numbers["ab_best_fixed"] = best_fixed = best_of(doc, "fixed D=")
    numbers["ab_best_linear"] = best_linear = best_of(doc, "linear k=")
    numbers["ab_fixed_trees"] = sum(m.startswith("fixed D=") for m in doc["aggregates"])
    numbers["ab_best_fixed_speedup"] = _mean(doc, best_fixed, "speedup")
    numbers["ab_best_linear_speedup"] = _mean(doc, best_linear, "speedup")
    pairs = {f"step{i}": (LADDER[i], LADDER[i - 1]) for i in range(1, len(LADDER))}
    pairs.update(paper=("+ history (paper)", "+ pruning"), controllers=(LADDER[-1], "+ history (paper)"),
                 vs_fixed=(LADDER[-1], best_fixed), vs_linear=(LADDER[-1], best_linear))
    numbers.update(paired_numbers(doc, "ab", pairs))
    return numbers


@extracts(MAIN["wikitext2"], COSTS)
def cost_model_numbers(doc: dict, costs: dict) -> Numbers:
    """How far chapter 5's cost model lands from the measured speedups (``cm_*``): the mean
    and the largest relative error |predicted - measured| / measured over our methods."""
    from ..harness.costs import predicted_vs_measured

    rows = predicted_vs_measured(doc, costs)
    errors = {r["method"]: abs(r["predicted"] - r["measured"]) / r["measured"] for r in rows}
    worst = max(errors, key=errors.get)
    return {"cm_methods": len(rows), "cm_mean_error": sum(errors.values()) / len(errors),
            "cm_max_error": errors[worst], "cm_worst": worst}


def overall_speedup(doc: dict, label: str) -> float:
    """A method's speedup as chapter 5 reads it: Spec-Bench's totals over its prompts, otherwise
    the mean over prompts."""
    if "groups" in doc:
        return doc["groups"]["overall"][label]["speedup"]
    return _mean(doc, label, "speedup")


def _all_exact(doc: dict) -> str:
    return "yes" if all(a["identical_to_ar"] for a in doc["aggregates"].values()) else "NO"


@extracts(MULTISOURCE["sb"], MULTISOURCE["wt"], MULTISOURCE["sampling"])
def multisource_numbers(sb: dict, wt: dict, sampled: dict) -> Numbers:
    """``ms_{sb,wt,s07}_*``: the default, prompt lookup and the paper's DynaTree (head) against
    AR, and the default's paired intervals against each, greedy and sampled."""
    numbers: Numbers = {}
    for key, doc in (("sb", sb), ("wt", wt), ("s07", sampled)):
        numbers.update(_multisource(key, doc))
    numbers["ms_sb_per_group"] = sb["protocol"]["per_group"]
    return numbers


@extracts(MULTISOURCE_PG19)
def multisource_pg19_numbers(pg: dict) -> Numbers:
    """``ms_pg_*``: the same comparison on PG-19 book prompts (a later file of the same day)."""
    return _multisource("pg", pg)


def _multisource(key: str, doc: dict) -> Numbers:
    numbers: Numbers = {f"ms_{key}_prompts": doc["protocol"]["num_prompts"],
                        f"ms_{key}_ar_tps": _mean(doc, "ar", "throughput")}
    for label in doc["aggregates"]:
        if label != "ar":
            numbers[f"ms_{key}_{slug(label)}_speedup"] = overall_speedup(doc, label)
            numbers[f"ms_{key}_{slug(label)}_tau"] = _mean(doc, label, "tau")
    if key != "s07":
        numbers[f"ms_{key}_exact"] = _all_exact(doc)
    numbers.update(paired_numbers(doc, f"ms_{key}", {
        "vs_ar": ("default@head", "ar"), "vs_lookup": ("default@head", "prompt-lookup"),
        "vs_dynatree": ("default@head", "dynatree@head")}))
    if f"ms_{key}_vs_lookup_low" in numbers:   # the interval's side of zero, in words
        low, high = numbers[f"ms_{key}_vs_lookup_low"], numbers[f"ms_{key}_vs_lookup_high"]
        numbers[f"ms_{key}_vs_lookup_word"] = (
            "ahead of prompt lookup beyond the noise" if low > 0
            else "behind prompt lookup beyond the noise" if high < 0 else "tied with prompt lookup")
    return numbers


@extracts(MULTISOURCE["sb"], RERUN["sb"], MULTISOURCE["wt"], RERUN["wt"])
def drift_numbers(sb: dict, sb2: dict, wt: dict, wt2: dict) -> Numbers:
    """``dr_{sb,wt}_*``: the same command run twice: AR's tokens/s and each method's speedup in
    each run, the runs' dates, and the largest change of a speedup between them."""
    numbers: Numbers = {}
    for key, first, second in (("sb", sb, sb2), ("wt", wt, wt2)):
        numbers[f"dr_{key}_date1"] = first["environment"]["date"][:16].replace("T", " ")
        numbers[f"dr_{key}_date2"] = second["environment"]["date"][:16].replace("T", " ")
        numbers[f"dr_{key}_ar_tps1"] = _mean(first, "ar", "throughput")
        numbers[f"dr_{key}_ar_tps2"] = _mean(second, "ar", "throughput")
        moves = []
        for label in first["aggregates"]:
            if label == "ar" or label not in second["aggregates"]:
                continue
            a, b = overall_speedup(first, label), overall_speedup(second, label)
            numbers[f"dr_{key}_{slug(label)}_speedup1"] = a
            numbers[f"dr_{key}_{slug(label)}_speedup2"] = b
            moves.append(abs(b - a))
        numbers[f"dr_{key}_largest_move"] = max(moves)
    return numbers


@extracts(LEAVE_ONE_OUT["sb"], LEAVE_ONE_OUT["wt"])
def drift_across_files(sb: dict, wt: dict) -> Numbers:
    """``dr_{sb,wt}_*_loo``: the default's and prompt lookup's speedups in the leave-one-out
    runs (Spec-Bench: the multisource run's prompts and flags with another mix of methods)."""
    return {f"dr_{key}_{slug(label)}_loo": overall_speedup(doc, label)
            for key, doc in (("sb", sb), ("wt", wt)) for label in ("default@head", "prompt-lookup")}


@extracts(LEAVE_ONE_OUT["sb"], LEAVE_ONE_OUT["wt"])
def leave_one_out_numbers(sb: dict, wt: dict) -> Numbers:
    """``lo_{sb,wt}_{head,model}_*``: the default's speedup, and per rule or source removed the
    variant's speedup and the paired difference default − variant (what the rule is worth)."""
    numbers: Numbers = {}
    worth: dict[str, list[float]] = {rule: [] for rule, _ in REMOVED}
    pays: dict[str, int] = {rule: 0 for rule, _ in REMOVED}
    for key, doc in (("sb", sb), ("wt", wt)):
        numbers[f"lo_{key}_prompts"] = doc["protocol"]["num_prompts"]
        numbers[f"lo_{key}_exact"] = _all_exact(doc)
        numbers[f"lo_{key}_prompt_lookup_speedup"] = overall_speedup(doc, "prompt-lookup")
        for drafter in ("head", "model"):
            default = f"default@{drafter}"
            tag = f"lo_{key}_{drafter}"
            numbers[f"{tag}_default_speedup"] = overall_speedup(doc, default)
            pairs = {rule: (default, f"default-{rule}@{drafter}") for rule, _ in REMOVED}
            pairs["paper"] = (default, f"dynatree@{drafter}")
            numbers.update(paired_numbers(doc, tag, pairs))
            for rule, (_, variant) in pairs.items():
                numbers[f"{tag}_{rule}_speedup"] = overall_speedup(doc, variant)
                mean, low, high = (numbers[f"{tag}_{rule}_{f}"] for f in ("mean", "low", "high"))
                numbers[f"{tag}_{rule}_word"] = ("pays" if low > 0 else "costs" if high < 0
                                                 else "within noise")
                if rule in worth:
                    worth[rule].append(mean)
                    pays[rule] += low > 0
    # the part whose removal costs most, over both datasets and both drafters
    top = max(worth, key=lambda rule: sum(worth[rule]))
    numbers["lo_top"] = dict(REMOVED)[top]
    numbers["lo_top_pays"] = pays[top]
    numbers["lo_top_columns"] = ("all four columns" if pays[top] == 4
                                 else f"{pays[top]} of the four columns")
    numbers["lo_rules_paying"] = sum(n > 0 for rule, n in pays.items() if rule != top)
    return numbers


def paired_numbers(doc: dict, prefix: str, pairs: dict[str, tuple[str, str]]) -> dict[str, float | str]:
    """``{prefix}_{name}_mean/low/high/verdict`` of each (a, b): the paired per-prompt speedup
    difference a - b with its bootstrap interval (:mod:`dynatree_lib.harness.paired`); pairs whose
    methods the file lacks are skipped."""
    numbers: dict[str, float | str] = {}
    for name, (a, b) in pairs.items():
        if a not in doc["aggregates"] or b not in doc["aggregates"]:
            continue
        diff = paired_difference(doc, a, b)
        for field in ("mean", "low", "high"):
            numbers[f"{prefix}_{name}_{field}"] = diff[field]
        verdicts = {"a": f"{a} wins", "b": f"{b} wins"}
        numbers[f"{prefix}_{name}_verdict"] = verdicts.get(diff["verdict"], "within noise")
    return numbers


# Spec-Bench: DynaTree against the baselines tuned on the WikiText-2 sweep, the paper's
# controller and prompt lookup, prompt by prompt (scripts/cpu_results.sh names them).
TUNED_FIXED, TUNED_LINEAR = "fixed D=3 B=3 t=0.05@model", "linear:k=2@model"
SPEC_BENCH_PAIRS = {"fixed": ("dynatree@model", TUNED_FIXED), "linear": ("dynatree@model", TUNED_LINEAR),
                    "paper": ("dynatree@model", "dynatree-paper@model"),
                    "lookup": ("dynatree@model", "prompt-lookup"),
                    "head_lookup": ("dynatree@head", "prompt-lookup"),
                    "head_model": ("dynatree@head", "dynatree@model")}


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
        controller = next(m["config"].get("controller", "paper") for m in doc["methods"]
                          if m["label"] == "dynatree@model")
        notes.append(f"{dataset}: {protocol['num_prompts']} prompts, T = {protocol['max_new_tokens']}"
                     f"{' (stops at EOS)' if protocol['stop_at_eos'] else ''}, {env['date'][:10]}, AR "
                     f"{_mean(doc, 'ar', 'throughput'):.1f} tok/s, DynaTree's controller: {controller}, "
                     f"AR self-repetition {ar_self_repetition(doc):.0%}, all identical to AR: "
                     f"{'yes' if exact else 'NO'}")
    heads = earlier_heads(docs.values())
    if heads:       # the head was trained further after these runs: say which head they measured
        hashes = ", ".join(f"`@{h}`" for h in heads)
        notes.append(f"head rows: an earlier head ({hashes}; chapter 7 compares)")
    return "\n".join(rows) + "\n\n" + "; ".join(notes) + "."


def default_table() -> str:
    """The README's table of the default (markdown): the default, prompt lookup and the paper's
    DynaTree against our AR per workload, with the default's paired intervals, from the
    multisource files; under it, the same command's second run (the drift)."""
    n = book_numbers()
    if not all(f"ms_{key}_prompts" in n for key in ("sb", "wt", "s07")):
        return "(the multisource results files are missing)"

    def pair(key: str, name: str) -> str:
        return (f"{n[f'ms_{key}_{name}_mean']:+.2f}x [{n[f'ms_{key}_{name}_low']:+.2f}, "
                f"{n[f'ms_{key}_{name}_high']:+.2f}]")

    rows = ["| workload | AR tok/s | **default** | prompt lookup | paper's DynaTree | "
            "default − lookup | default − DynaTree |", "| --- |" + " --- |" * 6]
    workloads = [("sb", f"Spec-Bench chat, {n['ms_sb_prompts']} prompts"),
                 ("wt", f"WikiText-2, {n['ms_wt_prompts']} prompts"),
                 ("s07", f"Spec-Bench, sampling at temperature 0.7, {n['ms_s07_prompts']} prompts")]
    if "ms_pg_prompts" in n:
        workloads.insert(2, ("pg", f"PG-19, {n['ms_pg_prompts']} prompts"))
    for key, title in workloads:
        lookup = (f"{n[f'ms_{key}_prompt_lookup_speedup']:.2f}x" if f"ms_{key}_prompt_lookup_speedup" in n
                  else "n/a")
        default = n[f"ms_{key}_default_head_speedup"]
        rows.append(f"| {title} | {n[f'ms_{key}_ar_tps']:.1f} | **{default:.2f}x** | "
                    f"{lookup} | {n[f'ms_{key}_dynatree_head_speedup']:.2f}x | "
                    f"{pair(key, 'vs_lookup') if f'ms_{key}_vs_lookup_mean' in n else 'n/a'} | "
                    f"{pair(key, 'vs_dynatree')} |")
    note = (f"Feature head; greedy outputs identical to AR: {n['ms_sb_exact']} (Spec-Bench), "
            f"{n['ms_wt_exact']} (WikiText-2)"
            + (f", {n['ms_pg_exact']} (PG-19)." if "ms_pg_exact" in n else "."))
    if "dr_sb_largest_move" in n:
        note += (f" The same commands run again ({n['dr_sb_date2']} UTC, after {n['dr_sb_date1']}): "
                 f"the default {n['dr_sb_default_head_speedup2']:.2f}x and prompt lookup "
                 f"{n['dr_sb_prompt_lookup_speedup2']:.2f}x on Spec-Bench, "
                 f"{n['dr_wt_default_head_speedup2']:.2f}x and {n['dr_wt_prompt_lookup_speedup2']:.2f}x "
                 f"on WikiText-2; a speedup moved by up to "
                 f"{max(n['dr_sb_largest_move'], n['dr_wt_largest_move']):.2f}x between the two runs.")
    return "\n".join(rows) + "\n\n" + note


def earlier_heads(docs) -> list[str]:
    """The hashes of the heads that result files measured, other than the committed one."""
    heads = {doc["pair"].get("head") for doc in docs} - {None, current_head()}
    return sorted(h.rsplit("@", 1)[-1] for h in heads)


def current_head() -> str | None:
    """The committed feature head's name as result files record it (``file@sha256[:12]``)."""
    import hashlib

    from ..models.feature_head import HEAD_WEIGHTS

    if not HEAD_WEIGHTS.is_file():
        return None
    return f"{HEAD_WEIGHTS.name}@{hashlib.sha256(HEAD_WEIGHTS.read_bytes()).hexdigest()[:12]}"
