"""Would a self-speculative draft beat the trained drafters? An early-exit probe on the embedded pair.

    python scripts/early_exit_probe.py            # ~2 min here; run it on an idle machine

A LayerSkip-style draft is the target's own first L layers with its final norm and output
rows: no second model, no training, and its cache is the target's first layers' cache. Here
it is measured without training (Kangaroo and LayerSkip train an adapter or the model itself):
teacher-forced agreement with the full target on the 8,192 spread WikiText-2 test tokens of
``draft-report``, and the cached one-token step of the shallow exit over the target's step
(interleaved, median). Beside them, the same two numbers for the project's trained drafters
from ``results/embedded_draft_quality.json``, and for each the best linear speculation the pair
would allow by Leviathan et al.'s estimate: with per-token acceptance a (taken as the top-1
agreement) and draft cost c, k drafts give (1 - a^(k+1)) / (1 - a) tokens for 1 + k c target
steps (a verification counted as one step, as on this CPU). Writes ``results/early_exit_probe.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from dynatree_lib.bench import environment
from dynatree_lib.draft_quality import early_exit_agreement, early_exit_cost_ratio
from dynatree_lib.models import load_pair
from dynatree_lib.resources import output_dir, result_file


def best_linear(agreement: float, cost: float, max_k: int = 16) -> dict:
    """Leviathan et al.'s expected speedup of Linear(k) at acceptance ``agreement``, best k."""
    def speedup(k: int) -> float:
        return (1 - agreement ** (k + 1)) / (1 - agreement) / (1 + k * cost)
    k = max(range(1, max_k + 1), key=speedup)
    return {"k": k, "speedup": speedup(k)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="4,8,12,16,20,24,28", help="exit layers (comma-separated)")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    layers = [int(x) for x in args.layers.split(",")]
    pair = load_pair("embedded")
    agreement = early_exit_agreement(pair.target, pair.tokenizer, layers, tokens=args.tokens)
    cost = early_exit_cost_ratio(pair.target, layers, repeats=args.repeats)
    exits = [{"layer": layer, "top1": a, "topk": b, "cost": c, "best_linear": best_linear(a, c)}
             for layer, a, b, c in zip(layers, agreement["top1"], agreement["topk"], cost["ratio"],
                                       strict=True)]
    report = json.loads(result_file("embedded_draft_quality.json").read_text())
    trained = {"draft model": (report["teacher_forced_agreement"], report["cost"]["ratio"]),
               "feature head": (report["head"]["agreement"]["by_depth"][0], report["head"]["cost"]["ratio"])}
    command = ["python scripts/early_exit_probe.py", *(sys.argv[1:] if argv is None else argv)]
    doc = {"schema": "dynatree-early-exit-probe/1", "pair": pair.name, "command": " ".join(command),
           "date": datetime.date.today().isoformat(), "environment": environment(pair.device, pair.dtype),
           "agreement": agreement, "cost": cost, "exits": exits,
           "trained": {name: {"top1": a, "cost": c, "best_linear": best_linear(a, c)}
                       for name, (a, c) in trained.items()}}
    path = output_dir() / "early_exit_probe.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    for row in exits:
        print(f"exit after layer {row['layer']:2d}/{agreement['of']}: top-1 {row['top1']:.3f}, "
              f"top-{agreement['k']} {row['topk']:.3f}, cost {row['cost']:.3f} -> best linear "
              f"{row['best_linear']['speedup']:.2f}x (k = {row['best_linear']['k']})")
    for name, row in doc["trained"].items():
        print(f"{name}: top-1 {row['top1']:.3f}, cost {row['cost']:.3f} -> best linear "
              f"{row['best_linear']['speedup']:.2f}x (k = {row['best_linear']['k']})")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
