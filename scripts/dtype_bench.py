"""bfloat16 against float32 on this CPU, end to end and in one run, on Spec-Bench questions.

    python scripts/dtype_bench.py                 # 2 questions per task group, ~10 min here

The embedded pair is loaded twice, in float32 (packed weights, the default) and in bfloat16;
on each question (first turns, chat template, stops at EOS or ``--max-new-tokens``) every
method runs in both dtypes, the order rotated per question, and every speedup is over the
float32 AR run on the same question: what a user gains by switching dtype and method together.
Verdicts: each method against the AR of its own dtype (identical / near-tie / mismatch,
``dynatree_lib.harness.exactness``); bfloat16 AR against float32 AR only by where its greedy text first
departs (a different rounding of the model, not a speculation error). Writes
``results/dtype_spec_bench_embedded_cpu.json`` with per-question records and, per method and
dtype, the mean speedup with a 95 % paired bootstrap interval over questions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from dynatree_lib.harness.bench import parse_methods
from dynatree_lib.harness.data import chat_prompt
from dynatree_lib.harness.environment import environment
from dynatree_lib.harness.exactness import classify_divergence
from dynatree_lib.harness.paired import paired_difference
from dynatree_lib.harness.resources import output_dir
from dynatree_lib.harness.runner import run_method
from dynatree_lib.harness.spec_bench import stratified
from dynatree_lib.models.pairs import load_pair

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
REFERENCE = "ar float32"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-group", type=int, default=2, help="questions of each of the six task groups")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--methods", default="ar,prompt-lookup,dynatree@model,dynatree@head,dynatree+lookup@head")
    p.add_argument("--output", type=Path, default=output_dir() / "dtype_spec_bench_embedded_cpu.json")
    args = p.parse_args(argv)
    methods = parse_methods(args.methods)
    if methods[0].kind != "ar":
        raise SystemExit("--methods must start with ar (the reference of each dtype)")
    pairs = {name: load_pair("embedded", dtype=dtype) for name, dtype in DTYPES.items()}
    tokenizer = pairs["float32"].tokenizer
    measured, warmup = stratified(args.per_group, args.warmup, seed=0)
    jobs = [(m, name) for name in pairs for m in methods]
    records = []
    with tqdm(total=len(jobs) * (len(measured) + len(warmup)), desc="dtype bench", unit="run") as bar:
        for index, question in enumerate([*warmup, *measured]):
            input_ids = torch.tensor([chat_prompt(tokenizer, [question.turns[0]], [])])
            shift = index % len(jobs)
            runs = {}
            for method, name in jobs[shift:] + jobs[:shift]:
                pair = pairs[name]
                bar.set_postfix_str(f"{method.label} {name}")
                runs[f"{method.label} {name}"] = run_method(
                    method, pair, input_ids, args.max_new_tokens, stop_at_eos=True, seed=index)
                bar.update()
            if index < len(warmup):
                continue
            reference = runs[REFERENCE]
            for method, name in jobs:
                label = f"{method.label} {name}"
                record, own_ar = runs[label], runs[f"{methods[0].label} {name}"]
                record.update(prompt_index=index - len(warmup), question_id=question.question_id,
                              group=question.group, method=label, dtype=name,
                              speedup=record["throughput"] / reference["throughput"])
                if label == f"{methods[0].label} bfloat16":
                    first = next((i for i, (a, b) in enumerate(zip(reference["tokens"], record["tokens"],
                                                                   strict=False)) if a != b), None)
                    record["departs_from_float32_at"] = first
                divergence = classify_divergence(pairs[name].target, input_ids, own_ar["tokens"],
                                                 record["tokens"])
                record["verdict"] = "identical" if divergence is None else divergence.verdict
                records.append(record)
    doc = {"schema": "dynatree-dtype-bench/1", "environment": environment(torch.device("cpu"), torch.float32),
           "command": "python scripts/dtype_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "questions": len(measured), "warmup": len(warmup), "max_new_tokens": args.max_new_tokens,
           "reference": REFERENCE, "packed_float32": pairs["float32"].packed, "records": records,
           "summary": summarize(records, [f"{m.label} {name}" for m, name in jobs]),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    args.output.write_text(json.dumps(doc, indent=1))
    for label, s in doc["summary"].items():
        print(f"{label:30s} {s['speedup']:.2f}x [{s['low']:.2f}, {s['high']:.2f}]  tau {s['tau']:.2f}  "
              f"{s['verdicts']}")
    print(f"wrote {args.output}")


def summarize(records: list[dict], labels: list[str]) -> dict:
    """Per method and dtype: mean speedup over float32 AR with its paired interval, τ, verdicts."""
    doc = {"records": records}
    summary = {}
    for label in labels:
        rows = [r for r in records if r["method"] == label]
        verdicts = {v: sum(r["verdict"] == v for r in rows) for v in ("identical", "near-tie", "mismatch")}
        entry = {"speedup": sum(r["speedup"] for r in rows) / len(rows),
                 "tau": sum(r["tau"] for r in rows) / len(rows), "verdicts": verdicts}
        if label == REFERENCE:
            entry.update(low=1.0, high=1.0)
        else:
            diff = paired_difference(doc, label, REFERENCE)
            entry.update(low=1 + diff["low"], high=1 + diff["high"])
        departs = [r["departs_from_float32_at"] for r in rows if "departs_from_float32_at" in r]
        if departs:
            entry["departs_from_float32"] = sum(d is not None for d in departs)
            entry["departs_at"] = departs
        summary[label] = entry
    return summary


if __name__ == "__main__":
    main()
