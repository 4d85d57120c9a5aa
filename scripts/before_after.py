"""Before/after one change, in one run: the decoding loop of an earlier commit against the
working tree's, interleaved prompt by prompt in one process, on the embedded pair.

    python scripts/before_after.py --commit d913040 [--tokens 64] [--lookup L] [--out results/x.json]

The earlier commit's ``dynatree_lib/core``, ``models/feature_head.py`` and ``models/quantize.py``
are taken with ``git show`` into a temporary package (they import only each other), so both
versions drive the same loaded models. Per drafter (feature head, draft model): tokens/s of DynaTree()
(``--lookup L``: DynaTree(lookup=L)) with
each version on 6 Spec-Bench first turns (one per group) and 4 WikiText-2 test prompts, the
order of the two versions drawn per prompt, after one warm-up each; the paired difference
with its bootstrap interval; tau; whether the outputs are identical. Own format (no schema).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import dynatree_lib as dt
from dynatree_lib.harness.data import chat_prompt, prompt_set, spec_bench_questions
from dynatree_lib.harness.environment import environment
from dynatree_lib.harness.paired import describe, paired_difference

ROOT = Path(__file__).resolve().parent.parent


def import_commit(commit: str, folder: Path):
    """The core loop and the feature head of ``commit`` as the package ``before``."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit, "dynatree_lib/core",
                            "dynatree_lib/models/feature_head.py", "dynatree_lib/models/quantize.py"],
                           cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        target = folder / "before" / Path(name).relative_to("dynatree_lib")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(subprocess.run(["git", "show", f"{commit}:{name}"], cwd=ROOT, check=True,
                                          capture_output=True).stdout)
    for package in ("before", "before/models"):
        (folder / package / "__init__.py").touch()
    sys.path.insert(0, str(folder))
    return (importlib.import_module("before.core.decode"), importlib.import_module("before.core.methods"),
            importlib.import_module("before.models.feature_head"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", required=True)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--lookup", type=int, default=0, help="DynaTree(lookup=L) in both versions")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        decode, methods, feature_head = import_commit(args.commit, Path(folder))
        pair = dt.load_pair("embedded")
        env = environment(pair.target.device, pair.target.dtype)
        tokenizer = pair.tokenizer
        prompts = [chat_prompt(tokenizer, q.turns[:1], []) for q in spec_bench_questions(1)[:6]]
        prompts += prompt_set("wikitext2", tokenizer, 4, 128, seed=1)
        head = pair.drafters["head"]
        drafters = {"head": (head, feature_head.FeatureDrafter(head.head, pair.target)),
                    "model": (pair.drafters["model"], pair.draft)}

        def run(version: str, drafter, ids: list[int], tokens: int):
            ids = torch.tensor([ids])
            start = time.perf_counter()
            if version == "after":
                result = dt.generate(pair.target, drafter, ids, dt.DynaTree(lookup=args.lookup), tokens,
                                     eos_token_id=[])
            else:
                result = decode.generate(pair.target, drafter, ids, methods.DynaTree(lookup=args.lookup),
                                         tokens, eos_token_id=[])
            return tokens / (time.perf_counter() - start), result

        for after, before in drafters.values():   # warm-up, not recorded
            run("after", after, prompts[0][:24], 16)
            run("before", before, prompts[0][:24], 16)
        records, order = [], random.Random(0)
        for index, ids in enumerate(prompts):
            for name, (after, before) in drafters.items():
                versions = ["after", "before"] if order.random() < 0.5 else ["before", "after"]
                outputs = {}
                for version in versions:
                    speed, result = run(version, after if version == "after" else before, ids, args.tokens)
                    outputs[version] = result.new_tokens
                    records.append({"prompt_index": index, "method": f"{version}@{name}",
                                    "tokens_per_second": speed, "tau": result.stats.tau,
                                    "draft_forwards": result.stats.draft_forwards})
                for record in records[-2:]:
                    record["identical"] = outputs["after"] == outputs["before"]
            print(f"prompt {index + 1}/{len(prompts)} done", flush=True)
    doc = {"commit": args.commit, "tokens": args.tokens, "lookup": args.lookup, "environment": env,
           "records": records, "summary": {}}
    for name in drafters:
        a, b = f"after@{name}", f"before@{name}"
        diff = paired_difference(doc, a, b, "tokens_per_second")
        mean, tau = ({label: sum(r[key] for r in records if r["method"] == label) / len(prompts)
                      for label in (a, b)} for key in ("tokens_per_second", "tau"))
        identical = sum(r["identical"] for r in records if r["method"] == a)
        doc["summary"][name] = {"difference": diff, "tokens_per_second": mean, "tau": tau,
                                "identical": identical, "prompts": len(prompts)}
        print(f"{name}: after {mean[a]:.1f} tok/s, before {mean[b]:.1f} tok/s; "
              f"{describe(diff, 'after', 'before', ' tok/s')}; tau {tau[a]:.3f} vs {tau[b]:.3f}; "
              f"identical outputs {identical}/{len(prompts)}")
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
