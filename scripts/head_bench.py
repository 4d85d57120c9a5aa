"""Two feature heads in one run: did more training make DynaTree faster? (paired, per prompt)

    git show 1ccc517:dynatree_lib/weights/embedded_head.safetensors > /tmp/head_step1600.safetensors
    python scripts/head_bench.py --baseline /tmp/head_step1600.safetensors   # ~20 min here

The embedded pair is loaded once (float32, packed weights) with the committed head (or
``--head``) and with the ``--baseline`` head beside it. On every prompt of two workloads, Spec-Bench questions
(``--per-group`` of each task group, first turns, chat template, stops at EOS) and WikiText-2
test prompts (the protocol of ``main_wikitext2_embedded_cpu.json``: 10 prompts of at most 200
tokens, EOS ignored), it runs AR, prompt lookup, the paper's DynaTree and the default method with each
head, the order rotated per prompt, ``--max-new-tokens`` tokens. Speedups are over AR on the
same prompt; every output is checked against AR's tokens. Writes
``results/head_bench_embedded_cpu.json``: per-prompt records and, per workload and method,
the mean speedup with a 95 % paired bootstrap interval, τ, and the paired difference of each
new-head method over its baseline-head twin.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from dynatree_lib.harness.bench import parse_methods
from dynatree_lib.harness.data import chat_prompt, prompt_set
from dynatree_lib.harness.environment import environment
from dynatree_lib.harness.paired import paired_difference
from dynatree_lib.harness.resources import output_dir
from dynatree_lib.harness.runner import run_method
from dynatree_lib.harness.spec_bench import stratified
from dynatree_lib.models.feature_head import FeatureDrafter, load_head
from dynatree_lib.models.packing import pack_linear_weights
from dynatree_lib.models.pairs import load_pair

METHODS = "ar,prompt-lookup,dynatree@head,default@head"


def workloads(tokenizer, per_group: int, wikitext: int) -> dict[str, list[tuple[dict, list[int], bool]]]:
    """{workload: [(prompt metadata, token ids, stop at EOS)]}, warm-up prompts first (index < 0)."""
    measured, warmup = stratified(per_group, 1, seed=0)
    chat = [({"question_id": q.question_id, "group": q.group, "warmup": i < len(warmup)},
             chat_prompt(tokenizer, [q.turns[0]], []), True) for i, q in enumerate([*warmup, *measured])]
    # the selection of `bench --dataset wikitext2 --num-prompts N --warmup 2`: the same prompts
    text = [({"warmup": i < 2}, ids, False)
            for i, ids in enumerate(prompt_set("wikitext2", tokenizer, wikitext + 2, 200, seed=0))]
    return {"spec_bench": chat, "wikitext2": text}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="the head to compare with (safetensors)")
    p.add_argument("--head", type=Path, default=None, help="the new head (default: the committed one)")
    p.add_argument("--per-group", type=int, default=4, help="Spec-Bench questions of each task group")
    p.add_argument("--wikitext", type=int, default=10, help="WikiText-2 test prompts")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--methods", default=METHODS, help="ar first; methods @head run with both heads")
    p.add_argument("--output", type=Path, default=output_dir() / "head_bench_embedded_cpu.json")
    args = p.parse_args(argv)
    methods = parse_methods(args.methods)
    if methods[0].kind != "ar":
        raise SystemExit("--methods must start with ar (the reference)")
    pair = load_pair("embedded", pack_weights=False)   # the baseline head takes the target's rows first
    if args.head is not None:
        pair.drafters["head"] = FeatureDrafter(load_head(pair.target, args.head), pair.target)
    pair.drafters["baseline"] = FeatureDrafter(load_head(pair.target, args.baseline), pair.target)
    heads = {"new": "head", "baseline": "baseline"}      # the run's two heads, as the pair names them
    for model in (pair.target, pair.draft, *(pair.drafters[name].head for name in heads.values())):
        pack_linear_weights(model)                       # then everything is packed, as load_pair does
    pair.packed = True
    jobs = [(m, name) for m in methods for name in (heads if m.drafter == "head" else [None])]

    def label(method, name) -> str:
        return method.label if name is None else f"{method.label} ({name} head)"

    prompts = workloads(pair.tokenizer, args.per_group, args.wikitext)
    records = []
    with tqdm(total=len(jobs) * sum(map(len, prompts.values())), desc="head bench", unit="run") as bar:
        for workload, items in prompts.items():
            index = 0
            for rotation, (meta, ids, stop) in enumerate(items):
                input_ids = torch.tensor([ids])
                shift = rotation % len(jobs)
                runs = {}
                for method, name in jobs[shift:] + jobs[:shift]:
                    bar.set_postfix_str(f"{workload} {label(method, name)}")
                    drafter = heads[name] if name else method.drafter
                    runs[label(method, name)] = run_method(replace(method, drafter=drafter), pair, input_ids,
                                                           args.max_new_tokens, stop_at_eos=stop)
                    bar.update()
                if meta["warmup"]:
                    continue
                reference = runs[methods[0].label]
                for key, record in runs.items():
                    record.update(workload=workload, prompt_index=index, method=key,
                                  speedup=record["throughput"] / reference["throughput"],
                                  identical=record["tokens"] == reference["tokens"],
                                  **{k: v for k, v in meta.items() if k != "warmup"})
                    records.append(record)
                index += 1
    labels = [label(m, name) for m, name in jobs]
    summary = {w: summarize([r for r in records if r["workload"] == w], labels, methods[0].label)
               for w in prompts}
    doc = {"schema": "dynatree-head-bench/1", "environment": environment(pair.device, pair.dtype),
           "command": " ".join(["python scripts/head_bench.py", *(sys.argv[1:] if argv is None else argv)]),
           "pair": pair.describe(), "heads": {name: {"name": pair.drafters[drafter].name,
                                                     "meta": pair.drafters[drafter].head.meta}
                                              for name, drafter in heads.items()},
           "max_new_tokens": args.max_new_tokens, "per_group": args.per_group, "wikitext": args.wikitext,
           "summary": summary, "records": records,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    args.output.write_text(json.dumps(doc, indent=1))
    for workload, rows in summary.items():
        for key, s in rows.items():
            extra = (f"  new - baseline {s['over_baseline']['mean']:+.2f} [{s['over_baseline']['low']:+.2f}, "
                     f"{s['over_baseline']['high']:+.2f}]" if "over_baseline" in s else "")
            print(f"{workload:10s} {key:36s} {s['speedup']:.2f}x [{s['low']:.2f}, {s['high']:.2f}]  "
                  f"tau {s['tau']:.2f}  identical {s['identical']}/{s['prompts']}{extra}")
    print(f"wrote {args.output}")


def summarize(records: list[dict], labels: list[str], reference: str) -> dict:
    """Per method: mean speedup over AR with its paired interval, τ, identical outputs, and for a
    new-head method its paired difference over the same method with the baseline head."""
    doc = {"records": records}
    summary = {}
    for key in labels:
        rows = [r for r in records if r["method"] == key]
        entry = {"speedup": sum(r["speedup"] for r in rows) / len(rows),
                 "tau": sum(r["tau"] for r in rows) / len(rows),
                 "identical": sum(r["identical"] for r in rows), "prompts": len(rows)}
        if key == reference:
            entry.update(low=1.0, high=1.0)
        else:
            diff = paired_difference(doc, key, reference)
            entry.update(low=1 + diff["low"], high=1 + diff["high"])
        if key.endswith("(new head)"):
            entry["over_baseline"] = paired_difference(doc, key, key.replace("(new head)", "(baseline head)"))
        summary[key] = entry
    return summary


if __name__ == "__main__":
    main()
