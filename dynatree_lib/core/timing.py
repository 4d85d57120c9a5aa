"""The one clock of the project: wait for the GPU, then read the time.

CUDA kernels run asynchronously, so a timestamp taken while they are queued charges
their time to whatever is measured next. Every timing in the library (decoding phases,
the Hugging Face peers, forward-cost curves, draft reports) reads :func:`now`.
"""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued CUDA work (every GPU: a dispatched model may span several)."""
    if device is not None and torch.device(device).type == "cuda":
        for index in range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)


def now(device: torch.device | str | None) -> float:
    """Seconds on a monotonic clock, after the device has finished its queued work."""
    synchronize(device)
    return time.perf_counter()


class Stopwatch:
    """Splits one run into phases: ``lap()`` returns the seconds since the previous lap."""

    def __init__(self, device: torch.device | str | None) -> None:
        self.device = device
        self.start = self.last = now(device)

    def lap(self) -> float:
        current = now(self.device)
        elapsed, self.last = current - self.last, current
        return elapsed

    def total(self) -> float:
        return now(self.device) - self.start
