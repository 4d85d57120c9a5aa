"""Run several methods on one prompt, interleaved, and compare them with greedy AR.

The quick side-by-side behind ``python -m dynatree_lib compare`` and ``demo``: for each
method the exactness verdict against AR and mean throughput, speedup, tau and
acceptance over ``repeats`` interleaved rounds (A B C A B C ...) after one discarded
warm-up round. Methods run through ``runner.run_method``, as in the benchmarks
(``dynatree_lib.harness.bench`` holds the full protocol).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from torch import Tensor

from ..core.methods import Autoregressive, Method
from ..models.pairs import ModelPair
from .exactness import classify_divergence
from .runner import run_method, spec_of


@dataclass
class MethodComparison:
    method: Method
    verdict: str            # identical | near-tie | mismatch (every round)
    throughput: float       # mean new tokens / s
    speedup: float          # throughput / AR throughput, same run
    tau: float
    acceptance_rate: float
    new_tokens: list[int]

    @property
    def identical(self) -> bool:
        return self.verdict == "identical"


def compare_methods(target, draft, input_ids: Tensor, methods: list[Method], max_new_tokens: int = 64,
                    stop_at_eos: bool = False, repeats: int = 3) -> list[MethodComparison]:
    """Compare ``methods`` (AR is added first if missing) on one prompt [1, L]."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    methods = list(methods)
    if not any(isinstance(m, Autoregressive) for m in methods):
        methods.insert(0, Autoregressive())
    specs = [spec_of(m) for m in methods]
    pair = ModelPair(target, draft, None, "compared", target.device, target.dtype)  # draft: any drafter
    input_ids = input_ids.to(target.device)
    runs: dict[int, list[dict]] = {i: [] for i in range(len(methods))}
    for round_ in range(repeats + 1):  # round 0 warms up caches and kernels, then is discarded
        for i, method in enumerate(specs):
            record = run_method(method, pair, input_ids, max_new_tokens, stop_at_eos=stop_at_eos)
            if round_:
                runs[i].append(record)
    ar_index = next(i for i, m in enumerate(methods) if isinstance(m, Autoregressive))
    reference = runs[ar_index][0]["tokens"]
    ar_throughput = statistics.mean(r["throughput"] for r in runs[ar_index])
    rows = []
    for i, method in enumerate(methods):
        verdicts = []
        for record in runs[i]:
            divergence = classify_divergence(target, input_ids, reference, record["tokens"])
            verdicts.append("identical" if divergence is None else divergence.verdict)
        verdict = next((v for v in ("mismatch", "near-tie") if v in verdicts), "identical")
        throughput = statistics.mean(r["throughput"] for r in runs[i])
        last = runs[i][-1]
        rows.append(MethodComparison(method, verdict, throughput, throughput / ar_throughput, last["tau"],
                                     last["acceptance_rate"] or 0.0, last["tokens"]))
    return rows


def format_comparison(rows: list[MethodComparison]) -> str:
    """A plain-text table of :func:`compare_methods` rows."""
    lines = [f"{'method':<18}{'exact':>9}{'tok/s':>10}{'speedup':>9}{'tau':>7}{'accept':>8}"]
    for row in rows:
        name = type(row.method).__name__ + (" + lookup" if getattr(row.method, "lookup", 0) else "")
        exact = {"identical": "yes", "near-tie": "near-tie", "mismatch": "NO"}[row.verdict]
        lines.append(f"{name:<18}{exact:>9}{row.throughput:>10.1f}"
                     f"{row.speedup:>8.2f}x{row.tau:>7.2f}{row.acceptance_rate:>8.2f}")
    return "\n".join(lines)
