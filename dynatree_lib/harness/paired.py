"""Paired comparisons over prompts: is one method's gain over another larger than the noise?

Every method of a benchmark file ran on the same prompts in the same run, so the fair
question is prompt by prompt: d_i = metric(a, prompt i) - metric(b, prompt i). The mean of
d_i with a percentile-bootstrap interval over prompts (fixed seed, so a rerun of the book
gives the same interval) says whether a beats b; an interval that crosses zero is "within
noise", whatever the means say.
"""

from __future__ import annotations

import numpy as np


def per_prompt(doc: dict, label: str, metric: str = "speedup") -> dict[int, float]:
    """{prompt_index: value} of one method in a results document."""
    return {r["prompt_index"]: r[metric] for r in doc["records"]
            if r["method"] == label and r.get(metric) is not None}


def paired_difference(doc: dict, a: str, b: str, metric: str = "speedup", *, level: float = 0.95,
                      resamples: int = 4000, seed: int = 0) -> dict:
    """Mean of metric(a) - metric(b) over the prompts both ran, with its bootstrap interval.

    Returns ``{"mean", "low", "high", "prompts", "verdict"}``; verdict is ``"a"`` or ``"b"``
    (the interval excludes zero on that side) or ``"within noise"``."""
    first, second = per_prompt(doc, a, metric), per_prompt(doc, b, metric)
    shared = sorted(first.keys() & second.keys())
    if len(shared) < 2:
        raise ValueError(f"{a} and {b} share {len(shared)} prompts: a paired interval needs two or more")
    d = np.array([first[i] - second[i] for i in shared])
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    verdict = "a" if low > 0 else "b" if high < 0 else "within noise"
    return {"mean": float(d.mean()), "low": float(low), "high": float(high), "prompts": len(d),
            "verdict": verdict}


def describe(diff: dict, a: str, b: str, unit: str = "x") -> str:
    """One line for the prose: who wins, by how much, with the interval."""
    interval = f"{diff['mean']:+.2f}{unit} [{diff['low']:+.2f}, {diff['high']:+.2f}]"
    if diff["verdict"] == "within noise":
        return f"{a} vs {b}: {interval}, within noise"
    winner = a if diff["verdict"] == "a" else b
    return f"{a} vs {b}: {interval}, {winner} wins"
