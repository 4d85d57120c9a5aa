"""Run several methods on one prompt, interleaved, and compare them with greedy AR.

The quick side-by-side behind ``python -m dynatree_lib compare``: for each method
the exactness verdict against AR and mean throughput, speedup, tau and acceptance
over ``repeats`` interleaved rounds (A B C A B C ...) after one discarded warm-up
round. The full benchmark protocol lives in ``dynatree_lib.bench``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from torch import Tensor

from .decode import generate
from .methods import Autoregressive, Method


@dataclass
class MethodComparison:
    method: Method
    identical: bool
    throughput: float       # mean new tokens / s
    speedup: float          # throughput / AR throughput, same run
    tau: float
    acceptance_rate: float
    new_tokens: list[int]


def compare_methods(target, draft, input_ids: Tensor, methods: list[Method], max_new_tokens: int = 64,
                    eos_token_id=None, repeats: int = 3) -> list[MethodComparison]:
    """Compare ``methods`` (AR is added first if missing) on one prompt."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    methods = list(methods)
    if not any(isinstance(m, Autoregressive) for m in methods):
        methods.insert(0, Autoregressive())
    runs: dict[int, list] = {i: [] for i in range(len(methods))}
    for round_ in range(repeats + 1):  # round 0 warms up caches and kernels, then is discarded
        for i, method in enumerate(methods):
            result = generate(target, draft, input_ids, method, max_new_tokens, eos_token_id)
            if round_:
                runs[i].append(result)
    ar_index = next(i for i, m in enumerate(methods) if isinstance(m, Autoregressive))
    reference = runs[ar_index][0].new_tokens
    ar_throughput = statistics.mean(r.stats.throughput for r in runs[ar_index])
    rows = []
    for i, method in enumerate(methods):
        throughput = statistics.mean(r.stats.throughput for r in runs[i])
        last = runs[i][-1]
        rows.append(MethodComparison(
            method, all(r.new_tokens == reference for r in runs[i]), throughput,
            throughput / ar_throughput, last.stats.tau, last.stats.acceptance_rate, last.new_tokens))
    return rows


def format_comparison(rows: list[MethodComparison]) -> str:
    """A plain-text table of :func:`compare_methods` rows."""
    lines = [f"{'method':<16}{'exact':>6}{'tok/s':>10}{'speedup':>9}{'tau':>7}{'accept':>8}"]
    for row in rows:
        name = type(row.method).__name__
        lines.append(f"{name:<16}{'yes' if row.identical else 'NO':>6}{row.throughput:>10.1f}"
                     f"{row.speedup:>8.2f}x{row.tau:>7.2f}{row.acceptance_rate:>8.2f}")
    return "\n".join(lines)
