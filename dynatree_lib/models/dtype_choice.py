"""``load_pair(dtype="auto")``: bfloat16 where the CPU computes it natively and it measures faster.

A CPU with bfloat16 matrix instructions (AVX-512 BF16, AMX) can run the embedded pair in
bfloat16, and there a forward over a tree of tokens costs little more than a one-token step
(chapter 5). Whether that beats packed float32 depends on the CPU (on an AMD EPYC without AMX
it did not), so "auto" measures instead of assuming: on such a CPU it times the target's
one-token step and an 8-token forward in both dtypes (a few seconds) and takes bfloat16 only
if one step plus one verification is at least ``MARGIN`` cheaper. Everywhere else, and on a
CPU without native bfloat16 (where bfloat16 is emulated and slow), it is float32, untimed.
The verdict is measured once per machine (CPU, its flags, torch) and kept in
``$DYNATREE_CACHE/dtype-auto.json``: a CPU near the margin would otherwise flip between runs,
and every process on a machine should decode the same text. Delete the file to measure again.

It is opt-in: the default stays float32, the dtype in which every output equals the target's
greedy decoding token for token. In bfloat16 the promise is "identical up to near-ties" against
the bfloat16 target's own greedy decoding (``harness.exactness``), and that target writes
other text than the float32 one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

# bfloat16 must save at least this share of (step + 8-token forward) to be chosen: timings on a
# shared CPU move by a few percent, and a switch of dtype changes the text, so ties stay float32.
MARGIN = 0.15
SIZES = (1, 8)
CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpuinfo_text() -> str:
    """``/proc/cpuinfo`` ("" where there is none: not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 instructions (``/proc/cpuinfo`` flags; False where unreadable)."""
    if cpuinfo is None:
        cpuinfo = cpuinfo_text()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in CPU_FLAGS)


def choose_dtype(native: bool, timings: dict[str, dict[int, float]] | None = None,
                 margin: float = MARGIN) -> tuple[torch.dtype, str]:
    """(dtype, why) from the CPU's bfloat16 support and ``{"float32": {n: s}, "bfloat16": ...}``,
    the seconds of an n-token forward of the target in each dtype."""
    if not native:
        return torch.float32, "float32: this CPU has no native bfloat16"
    if not timings:
        raise ValueError("a CPU with native bfloat16 needs timings of both dtypes to choose")
    cost = {name: sum(curve[n] for n in SIZES) for name, curve in timings.items()}
    ratio = cost["bfloat16"] / cost["float32"]
    if ratio <= 1 - margin:
        return torch.bfloat16, f"bfloat16: a step + an 8-token forward took {ratio:.2f} of float32's"
    return torch.float32, (f"float32: bfloat16 took {ratio:.2f} of float32's time for a step + an "
                           f"8-token forward (needs <= {1 - margin:.2f})")


@torch.inference_mode()
def measure(float32_target, bfloat16_target, repeats: int = 9, prefix_len: int = 64) \
        -> dict[str, dict[int, float]]:
    """Median seconds of the target's n-token forward (n in ``SIZES``, after ``prefix_len``
    cached tokens) in both dtypes, the two interleaved forward by forward so that a machine
    slowing down mid-way favours neither; a first round warms the kernels and is dropped."""
    import statistics

    from transformers import DynamicCache

    from ..core.timing import now

    models = {"float32": float32_target, "bfloat16": bfloat16_target}
    generator = torch.Generator().manual_seed(0)
    vocab = float32_target.config.vocab_size
    device = float32_target.device
    prefix = torch.randint(0, vocab, (1, prefix_len), generator=generator).to(device)
    caches = {}
    for name, model in models.items():
        caches[name] = DynamicCache(config=model.config)
        model(prefix, past_key_values=caches[name], use_cache=True)
    times: dict[str, dict[int, list[float]]] = {name: {n: [] for n in SIZES} for name in models}
    for _ in range(repeats + 1):
        for n in SIZES:
            tokens = torch.randint(0, vocab, (1, n), generator=generator).to(device)
            for name, model in models.items():
                start = now(device)
                model(tokens, past_key_values=caches[name], use_cache=True)
                times[name][n].append(now(device) - start)
                caches[name].crop(-n)
    return {name: {n: statistics.median(t[1:]) for n, t in curve.items()} for name, curve in times.items()}


def machine_key(cpuinfo: str | None = None) -> str:
    """What the verdict depends on: the CPU's model and flags, torch's version and ``MARGIN``."""
    lines = (cpuinfo if cpuinfo is not None else cpuinfo_text()).splitlines()
    model = next((line for line in lines if line.startswith("model name")), "")
    flags = next((line for line in lines if line.startswith("flags")), "")
    text = "\n".join([model, flags, torch.__version__, str(MARGIN)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def remembered(path: Path, key: str, decide) -> tuple[torch.dtype, str]:
    """The verdict stored in ``path`` for ``key``, or ``decide()``'s, stored there first."""
    verdicts = json.loads(path.read_text()) if path.is_file() else {}
    if key not in verdicts:
        dtype, why = decide()
        verdicts[key] = {"dtype": str(dtype).removeprefix("torch."), "why": why}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(verdicts, indent=1))
        return dtype, why
    entry = verdicts[key]
    return getattr(torch, entry["dtype"]), f"{entry['why']} (measured once on this machine: {path})"
