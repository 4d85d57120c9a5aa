"""Count the reads of tensor data into Python during a generation: each one is a wait for the
device on a GPU (the loop stalls until the queued kernels finish), so a loop that reads often
starves the GPU however fast its kernels are.

Counted, as :class:`HostReads` wraps them for the duration of a ``with`` block: ``item``,
``tolist``, ``bool``, ``int``, ``float``, ``index``, ``cpu``, ``numpy`` and the operations whose
result shape depends on the data (``nonzero``, boolean-mask indexing, ``masked_select``,
one-argument ``torch.where``, ``unique``; an assignment through a boolean mask, which finds its
indices with ``nonzero``). A read made inside another counted one counts once.
It runs on the CPU too, where reads cost nothing: the count is the same on every device.
"""

from __future__ import annotations

import functools
from collections import Counter

import torch
from torch import Tensor

READ_BUDGET = 3   # the most reads one greedy iteration may make (gpt-fast reads once per token)

READERS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "nonzero",
           "masked_select", "unique")


class HostReads:
    """``with HostReads() as reads: ...`` then ``reads.total`` and ``reads.by_kind``."""

    def __init__(self) -> None:
        self.by_kind: Counter[str] = Counter()
        self._saved: dict[tuple[object, str], object] = {}
        self._depth = 0

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def _count(self, kind: str, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if self._depth == 0:
                self.by_kind[kind] += 1
            self._depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
        return wrapper

    def _boolean_index(self, function, kind: str):
        @functools.wraps(function)
        def wrapper(tensor, index, *value):
            parts = index if isinstance(index, tuple) else (index,)
            if self._depth == 0 and any(isinstance(p, Tensor) and p.dtype == torch.bool and p.dim() > 0
                                        for p in parts):
                self.by_kind[kind] += 1
            return function(tensor, index, *value)
        return wrapper

    def _where(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if self._depth == 0 and len(args) == 1 and not kwargs:
                self.by_kind["where"] += 1
            return function(*args, **kwargs)
        return wrapper

    def _patch(self, owner, name: str, wrapped) -> None:
        self._saved[(owner, name)] = getattr(owner, name)
        setattr(owner, name, wrapped)

    def __enter__(self) -> HostReads:
        for name in READERS:
            self._patch(Tensor, name, self._count(name.strip("_"), getattr(Tensor, name)))
        for name in ("nonzero", "masked_select", "unique"):
            self._patch(torch, name, self._count(name, getattr(torch, name)))
        self._patch(Tensor, "__getitem__", self._boolean_index(Tensor.__getitem__, "boolean index"))
        self._patch(Tensor, "__setitem__", self._boolean_index(Tensor.__setitem__, "boolean assignment"))
        self._patch(torch, "where", self._where(torch.where))
        return self

    def __exit__(self, *exc) -> None:
        for (owner, name), original in self._saved.items():
            setattr(owner, name, original)
        self._saved.clear()


def reads_per_iteration(run) -> dict:
    """Call ``run()`` (a ``generate`` call) counting host reads; returns the total (the prompt's
    checks and the prefill included), the count per kind, and reads per iteration of the
    speculative loop (``core.decode._iteration``): the mean and the most in one iteration. For
    AR, whose loop has no iterations, per token (one target forward each)."""
    from ..core import decode

    per_iteration: list[int] = []
    iteration = decode._iteration

    with HostReads() as reads:
        def counted(state, spec) -> None:
            before = reads.total
            iteration(state, spec)
            per_iteration.append(reads.total - before)

        decode._iteration = counted
        try:
            result = run()
        finally:
            decode._iteration = iteration
    if per_iteration:
        mean, most, steps = sum(per_iteration) / len(per_iteration), max(per_iteration), len(per_iteration)
    else:
        steps = max(result.stats.new_tokens - 1, 1)
        mean = most = reads.total / steps
    return {"reads": reads.total, "by_kind": dict(reads.by_kind), "iterations": steps,
            "per_iteration": mean, "most_per_iteration": most}
