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
    """Splits one run into named phases without waiting for the device between them.

    ``lap(phase)`` charges the time since the previous lap to ``phase``; ``totals()`` returns
    the seconds per phase and ``"total"``. On CUDA each lap records an event on the current
    stream (``torch.cuda.Event``), so the GPU is never drained between phases: ``totals()``
    synchronises once, at the end. (A target spread over several GPUs is timed on its first
    device's stream; the total waits for every device.) On a CPU a lap reads the clock.
    """

    def __init__(self, device: torch.device | str | None) -> None:
        self.device = device
        self.cuda = device is not None and torch.device(device).type == "cuda"
        self.start = now(device)   # nothing queued before the run is charged to it
        self.marks: list[tuple[str, object]] = [("start", self._mark())]

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def lap(self, phase: str) -> None:
        self.marks.append((phase, self._mark()))

    def last(self, phase: str) -> float:
        """Seconds of the latest lap charged to ``phase`` (0 if none). On CUDA read only after
        the host has waited for that lap's work (e.g. by reading a result computed after it):
        its events are then complete and reading them waits for nothing."""
        for (_, before), (name, after) in zip(reversed(self.marks[:-1]), reversed(self.marks[1:]),
                                              strict=True):
            if name == phase:
                return before.elapsed_time(after) / 1000 if self.cuda else after - before
        return 0.0

    def totals(self) -> dict[str, float]:
        """Seconds per phase (summed over its laps) and ``"total"``: one wait for the device."""
        total = now(self.device) - self.start
        seconds: dict[str, float] = {}
        for (_, before), (phase, after) in zip(self.marks, self.marks[1:], strict=False):
            spent = before.elapsed_time(after) / 1000 if self.cuda else after - before
            seconds[phase] = seconds.get(phase, 0.0) + spent
        seconds["total"] = total
        return seconds
