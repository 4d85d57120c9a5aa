"""How much an output repeats: itself (looping) and its prompt (copying).

Both are what context lookup feeds on, so every benchmark record carries them: a
workload whose outputs loop or copy flatters prompt lookup and any method grafting it,
and says little about a draft model.
"""

from __future__ import annotations


def _grams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def copy_rate(prompt: list[int], output: list[int], n: int = 3) -> float | None:
    """Fraction of the output's n-grams that also occur in the prompt: how much an answer
    repeats its question (what prompt lookup can copy). None for outputs shorter than n."""
    seen = set(_grams(prompt, n))
    mine = _grams(output, n)
    return sum(g in seen for g in mine) / len(mine) if mine else None


def self_repetition(output: list[int], n: int = 3) -> float | None:
    """Fraction of the output's n-grams that repeat an earlier n-gram of the same output (a
    greedy loop scores near 1, fresh text near 0). None for outputs shorter than n."""
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    grams = _grams(output, n)
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else None
