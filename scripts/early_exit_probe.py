"""Would a self-speculative draft beat the trained drafters? An early-exit probe on the embedded pair.

    python scripts/early_exit_probe.py            # ~6 min here; run it on an idle machine

A LayerSkip-style draft is the target's own first L layers with its final norm and output
rows: no second model, no training, and its cache is the target's first layers' cache. Here
it is measured without training (Kangaroo and LayerSkip train an adapter or the model itself):
teacher-forced agreement with the full target on the 8,192 spread WikiText-2 test tokens of
``draft-report``, and the cached one-token step of the shallow exit over the target's step
(interleaved, median). Beside them, the same two numbers for the project's trained drafters
from ``results/embedded_draft_quality.json``, and for each the best linear speculation the pair
would allow by Leviathan et al.'s estimate: with per-token acceptance a (taken as the top-1
agreement) and draft cost c, k drafts give (1 - a^(k+1)) / (1 - a) tokens for 1 + k c target
steps (a verification counted as one step, as on this CPU). And end to end, the peer a user
would pick for it: Hugging Face's ``generate(assistant_early_exit=L)`` against its plain greedy
``generate`` on WikiText-2 test prompts (tokens per second, interleaved, outputs compared).
Writes ``results/early_exit_probe.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys

import torch

from dynatree_lib.core.timing import now
from dynatree_lib.harness.data import prompt_set
from dynatree_lib.harness.draft_quality import early_exit_agreement, early_exit_cost_ratio
from dynatree_lib.harness.environment import environment
from dynatree_lib.harness.resources import output_dir, result_file
from dynatree_lib.models.pairs import load_pair


def best_linear(agreement: float, cost: float, max_k: int = 16) -> dict:
    """Leviathan et al.'s expected speedup of Linear(k) at acceptance ``agreement``, best k."""
    def speedup(k: int) -> float:
        return (1 - agreement ** (k + 1)) / (1 - agreement) / (1 + k * cost)
    k = max(range(1, max_k + 1), key=speedup)
    return {"k": k, "speedup": speedup(k)}


@torch.inference_mode()
def hf_early_exit(pair, layers: list[int], prompts: int, new_tokens: int) -> dict:
    """Tokens per second of HF greedy ``generate`` and of ``assistant_early_exit=L`` for each L,
    on the same prompts (one warm-up prompt first, order rotated per prompt)."""
    target = pair.target
    runs = [None, *layers]
    speed = {run: [] for run in runs}
    identical = dict.fromkeys(layers, 0)
    chosen = prompt_set("wikitext2", pair.tokenizer, prompts + 1, 200, seed=0)
    for index, ids in enumerate(chosen):
        x = torch.tensor([ids], device=target.device)
        tokens = {}
        for run in runs[index % len(runs):] + runs[:index % len(runs)]:
            extra = {} if run is None else {"assistant_early_exit": run}
            start = now(target.device)
            out = target.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                  eos_token_id=None, pad_token_id=pair.tokenizer.eos_token_id, **extra)
            seconds = now(target.device) - start
            tokens[run] = out[0, x.shape[1]:].tolist()
            if index:                                   # the first prompt warms up
                speed[run].append(len(tokens[run]) / seconds)
        if index:
            for layer in layers:
                identical[layer] += tokens[layer] == tokens[None]
    def ratio(layer: int) -> float:      # mean over prompts of the per-prompt speedup
        return statistics.mean(a / b for a, b in zip(speed[layer], speed[None], strict=True))

    return {"prompts": prompts, "new_tokens": new_tokens, "greedy_tokens_per_s": statistics.mean(speed[None]),
            "exits": [{"layer": layer, "tokens_per_s": statistics.mean(speed[layer]), "speedup": ratio(layer),
                       "identical": identical[layer]} for layer in layers]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="4,8,12,16,20,24,28", help="exit layers (comma-separated)")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--hf-layers", default="8,24", help="exit layers for HF's assistant_early_exit")
    parser.add_argument("--hf-prompts", type=int, default=4)
    parser.add_argument("--hf-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    layers = [int(x) for x in args.layers.split(",")]
    pair = load_pair("embedded")
    agreement = early_exit_agreement(pair.target, pair.tokenizer, layers, tokens=args.tokens)
    cost = early_exit_cost_ratio(pair.target, layers, repeats=args.repeats)
    hf = hf_early_exit(pair, [int(x) for x in args.hf_layers.split(",")], args.hf_prompts, args.hf_tokens)
    exits = [{"layer": layer, "top1": a, "topk": b, "cost": c, "best_linear": best_linear(a, c)}
             for layer, a, b, c in zip(layers, agreement["top1"], agreement["topk"], cost["ratio"],
                                       strict=True)]
    report = json.loads(result_file("embedded_draft_quality.json").read_text())
    trained = {"draft model": (report["teacher_forced_agreement"], report["cost"]["ratio"]),
               "feature head": (report["head"]["agreement"]["by_depth"][0], report["head"]["cost"]["ratio"])}
    command = ["python scripts/early_exit_probe.py", *(sys.argv[1:] if argv is None else argv)]
    doc = {"schema": "dynatree-early-exit-probe/1", "pair": pair.name, "command": " ".join(command),
           "date": datetime.date.today().isoformat(), "environment": environment(pair.device, pair.dtype),
           "agreement": agreement, "cost": cost, "exits": exits, "hf_assistant_early_exit": hf,
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
    for row in hf["exits"]:
        print(f"HF assistant_early_exit={row['layer']}: {row['speedup']:.2f}x HF greedy, "
              f"identical on {row['identical']}/{hf['prompts']} prompts")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
