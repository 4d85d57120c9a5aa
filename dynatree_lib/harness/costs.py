"""What a forward costs: the curve that decides every speculation trade-off.

``forward_cost_curve`` times one cached forward of n new tokens after a fixed prefix,
for several n, on the model's own device. On a GPU the curve stays flat for a long
while (verification is nearly free); on a small CPU it rises early, so trees must
stay small there. ``predicted_speedup`` turns the curve and measured acceptance into
the speedup a method should reach (the book's cost model).
"""

from __future__ import annotations

import datetime
import json
import statistics
from pathlib import Path

import torch
from transformers import DynamicCache

from ..core.timing import now

COSTS_SCHEMA = "dynatree-costs/1"
SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


@torch.inference_mode()
def forward_cost_curve(model, sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128),
                       prefix_len: int = 256, repeats: int = 5) -> dict[int, float]:
    """{n: median seconds of one forward of n tokens after ``prefix_len`` cached tokens}."""
    device = model.device
    generator = torch.Generator().manual_seed(0)  # CPU ids, then moved: the same ids on any device
    vocab = model.config.vocab_size
    prefix = torch.randint(0, vocab, (1, prefix_len), generator=generator, device="cpu").to(device)
    cache = DynamicCache(config=model.config)
    model(prefix, past_key_values=cache, use_cache=True)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    model(prefix[:, -1:], past_key_values=cache, use_cache=True)  # one cached step warms the kernels
    cache.crop(-1)
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        for n in sizes:
            tokens = torch.randint(0, vocab, (1, n), generator=generator, device="cpu").to(device)
            start = now(device)
            model(tokens, past_key_values=cache, use_cache=True)
            times[n].append(now(device) - start)
            cache.crop(-n)  # transformers 5: a negative crop drops that many tokens
    return {n: statistics.median(t[1:]) for n, t in times.items()}


def predicted_speedup(tau: float, verify_cost: float, draft_forwards_per_iteration: float,
                      draft_cost: float) -> float:
    """Speedup over AR from tokens per iteration ``tau`` and costs in units of one AR step:

    one iteration costs ``verify_cost`` (the tree forward) + ``draft_forwards_per_iteration``
    x ``draft_cost`` and commits ``tau`` tokens, where AR commits one per unit.
    """
    return tau / (verify_cost + draft_forwards_per_iteration * draft_cost)


def predicted_vs_measured(doc: dict, costs: dict, weights: str = "packed") -> list[dict]:
    """Cost-model speedup of each speculative method against its measured speedup.

    Per iteration the target verifies ``mean_tree_size`` nodes + the root and the draft runs
    ``draft_forwards / iterations`` forwards; both are priced with the measured cost curves
    (in units of the target's one-token step), and an iteration commits ``new_tokens /
    iterations`` tokens. Prefill is left out of the model, so it slightly flatters short runs.
    """
    target = costs["curves"]["target"].get(weights) or costs["curves"]["target"]["default"]
    draft = costs["curves"]["draft"].get(weights) or costs["curves"]["draft"]["default"]
    unit = target["1"]
    rows = []
    for label, a in doc["aggregates"].items():
        if "iterations" not in a or "mean_tree_size" not in a or label == "ar":
            continue
        iterations = a["iterations"]["mean"]
        tokens = doc["protocol"]["max_new_tokens"]
        verify = curve_cost(target, a["mean_tree_size"]["mean"] + 1) / unit
        predicted = predicted_speedup(tokens / iterations, verify, a["draft_forwards"]["mean"] / iterations,
                                      curve_cost(draft, 1) / unit)
        rows.append({"method": label, "predicted": predicted, "measured": a["speedup"]["mean"],
                     "verify_cost": verify, "tokens_per_iteration": tokens / iterations})
    return rows


def cost_document(pair, sizes: tuple[int, ...] = SIZES, prefix_len: int = 256, repeats: int = 5,
                  command: str = "", also: dict | None = None) -> dict:
    """Forward-cost curves of target and draft, with the default weights and (CPU) packed.

    ``pair`` must be loaded with ``pack_weights=False``; its models are packed here, in
    place, after the default curves are measured, so both come from the same run.
    ``also``: {curve name: another pair} timed in the same run, e.g. {"bfloat16": the
    pair loaded in bfloat16}: what a dtype buys is only comparable within one run.
    """
    from ..models.packing import pack_linear_weights
    from .environment import environment

    curves: dict[str, dict[str, dict[str, float]]] = {"target": {}, "draft": {}}
    for role in curves:
        model = getattr(pair, role)
        curves[role]["default"] = _str_keys(forward_cost_curve(model, sizes, prefix_len, repeats))
    for role in curves:
        if pack_linear_weights(getattr(pair, role)):
            curves[role]["packed"] = _str_keys(forward_cost_curve(getattr(pair, role), sizes, prefix_len,
                                                                  repeats))
    for name, other in (also or {}).items():
        for role in curves:
            curves[role][name] = _str_keys(forward_cost_curve(getattr(other, role), sizes, prefix_len,
                                                              repeats))
    return {"schema": COSTS_SCHEMA, "environment": environment(pair.device, pair.dtype),
            "pair": pair.name, "command": command, "prefix_len": prefix_len, "repeats": repeats,
            "sizes": list(sizes), "curves": curves,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def read_costs(path: str | Path) -> dict:
    """A cost document written by ``python -m dynatree_lib costs``, validated against
    ``schemas/costs.schema.json``; a bare file name is looked up in ``resources.results_dirs()``."""
    from .resources import result_file
    from .schema import validate

    path = Path(path)
    if not path.exists() and path.parent == Path("."):
        path = result_file(path.name)
    try:
        return validate(json.loads(path.read_text()), COSTS_SCHEMA)
    except ValueError as error:
        raise ValueError(f"{path} is not a valid {COSTS_SCHEMA} document: {error}") from None


def curve_cost(curve: dict[str, float], n: float) -> float:
    """Seconds of one forward of ``n`` tokens, interpolated linearly between measured sizes."""
    points = sorted((int(k), v) for k, v in curve.items())
    if n <= points[0][0]:
        return points[0][1]
    for (n0, c0), (n1, c1) in zip(points, points[1:], strict=False):
        if n <= n1:
            return c0 + (c1 - c0) * (n - n0) / (n1 - n0)
    (n0, c0), (n1, c1) = points[-2], points[-1]
    return c1 + (c1 - c0) * (n - n1) / (n1 - n0)


def _str_keys(curve: dict[int, float]) -> dict[str, float]:
    return {str(n): t for n, t in curve.items()}
