"""What a forward costs: the curve that decides every speculation trade-off.

``forward_cost_curve`` times one cached forward of n new tokens after a fixed prefix,
for several n, on the model's own device. On a GPU the curve stays flat for a long
while (verification is nearly free); on a small CPU it rises early, so trees must
stay small there. ``predicted_speedup`` turns the curve and measured acceptance into
the speedup a method should reach (the book's cost model).
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import DynamicCache


@torch.inference_mode()
def forward_cost_curve(model, sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128),
                       prefix_len: int = 256, repeats: int = 5) -> dict[int, float]:
    """{n: median seconds of one forward of n tokens after ``prefix_len`` cached tokens}."""
    device = model.device
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prefix = torch.randint(0, vocab, (1, prefix_len), generator=generator).to(device)
    cache = DynamicCache(config=model.config)
    model(prefix, past_key_values=cache, use_cache=True)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        for n in sizes:
            tokens = torch.randint(0, vocab, (1, n), generator=generator).to(device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(tokens, past_key_values=cache, use_cache=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[n].append(time.perf_counter() - start)
            cache.crop(-n)  # transformers 5: a negative crop drops that many tokens
    return {n: statistics.median(t[1:]) for n, t in times.items()}


def predicted_speedup(tau: float, verify_cost: float, draft_forwards_per_iteration: float,
                      draft_cost: float) -> float:
    """Speedup over AR from tokens per iteration ``tau`` and costs in units of one AR step:

    one iteration costs ``verify_cost`` (the tree forward) + ``draft_forwards_per_iteration``
    x ``draft_cost`` and commits ``tau`` tokens, where AR commits one per unit.
    """
    return tau / (verify_cost + draft_forwards_per_iteration * draft_cost)
