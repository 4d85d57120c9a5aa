"""``python -m dynatree_lib gpu-check``: what a GPU machine must show, in a few minutes, offline.

1. exactness: every method against greedy AR on tiny random Llama and GPT-NeoX models in
   float32, float16 and bfloat16, each run with its verdict (identical / near-tie /
   mismatch, :mod:`dynatree_lib.harness.exactness`); a mismatch fails the check;
2. a split target: a tiny model dispatched by accelerate with half its layers on the GPU
   and half on the CPU (a target larger than one GPU), the draft on the first device;
3. costs: models built from the Pythia-2.8B and Pythia-70M configurations (written out
   below: no download) with random weights in float16; the forward-cost curve of the
   target for 1-256 tokens, one draft step and one AR step. Random weights cost what
   trained ones cost: the curve is real, the text is not.

It writes ``gpu_check_<gpu name>.json`` (``schemas/gpu_check.schema.json``), which chapter 5
turns into a cost-model prediction. ``--dry-run`` runs the same code on the CPU with tiny
configurations (CI runs it), so a GPU session does not discover a bug in the check itself.
"""

from __future__ import annotations

import copy
import datetime
import re
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from ..core.methods import DynaTree, FixedTree, Linear
from ..core.timing import now
from .exactness import compare_with_autoregressive
from .host_reads import READ_BUDGET

SCHEMA = "dynatree-gpu-check/1"
# EleutherAI/pythia-2.8b and pythia-70m (config.json on the Hugging Face Hub).
PYTHIA_COMMON = dict(vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
                     use_parallel_residual=True, layer_norm_eps=1e-5, tie_word_embeddings=False,
                     bos_token_id=0, eos_token_id=0, hidden_act="gelu")
PYTHIA_2_8B = dict(hidden_size=2560, num_hidden_layers=32, num_attention_heads=32, intermediate_size=10240,
                   **PYTHIA_COMMON)
PYTHIA_70M = dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048,
                  **PYTHIA_COMMON)
# Dry run: the same code on shapes a CPU runs in seconds.
TINY_TARGET = dict(PYTHIA_COMMON, vocab_size=512, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                   intermediate_size=256)
TINY_DRAFT = dict(TINY_TARGET, num_hidden_layers=1)
COST_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _tiny(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    common = dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                  num_attention_heads=4, max_position_embeddings=256, initializer_range=0.5)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common)).eval()
    return GPTNeoXForCausalLM(GPTNeoXConfig(rotary_pct=0.5, **common)).eval()


def _noisy(model, noise: float = 0.02):
    draft = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn(p.shape, generator=generator, device="cpu").to(p.device, p.dtype) * noise)
    return draft


def _prompts(count: int, device) -> list[torch.Tensor]:
    return [torch.randint(0, 96, (1, 8 + 3 * i), generator=torch.Generator().manual_seed(100 + i),
                          device="cpu").to(device) for i in range(count)]


METHODS = {"Linear(k=4)": Linear(k=4), "FixedTree(4, 2, 0.01)": FixedTree(depth=4, branch=2, threshold=0.01),
           "DynaTree()": DynaTree()}


def exactness_section(device: torch.device, prompts: int, new_tokens: int) -> list[dict]:
    """One row per (architecture, dtype, method): how many prompts gave each verdict."""
    rows = []
    jobs = [(arch, dtype) for arch in ("llama", "neox") for dtype in DTYPES]
    for arch, dtype in tqdm(jobs, desc="gpu-check exactness", unit="model"):
        target = _tiny(arch).to(device, dtype)
        draft = _noisy(_tiny(arch)).to(device, dtype)
        for label, method in METHODS.items():
            counts = {"identical": 0, "near-tie": 0, "mismatch": 0}
            notes = []
            for ids in _prompts(prompts, device):
                report = compare_with_autoregressive(target, draft, ids, method, new_tokens, eos_token_id=[])
                counts[report.verdict] += 1
                if report.divergence is not None:
                    notes.append(str(report))
            rows.append({"arch": arch, "dtype": str(dtype).removeprefix("torch."), "method": label,
                         **counts, "notes": notes[:3]})
    return rows


def split_section(device: torch.device, new_tokens: int) -> dict:
    """A tiny target dispatched over two places (GPU + CPU; dry run: CPU + disk), checked for exactness."""
    from transformers import AutoModelForCausalLM

    reference = _tiny("llama")
    second = "cpu" if device.type == "cuda" else "disk"
    first = 0 if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        device_map = {"model.embed_tokens": first, "model.layers.0": first, "model.layers.1": first,
                      "model.layers.2": second, "model.layers.3": second, "model.norm": second,
                      "model.rotary_emb": first, "lm_head": second}
        target = AutoModelForCausalLM.from_pretrained(folder, device_map=device_map,
                                                      offload_folder=str(Path(folder) / "offload")).eval()
        draft = _noisy(reference).to(target.device)
        verdicts = {"identical": 0, "near-tie": 0, "mismatch": 0}
        for method in METHODS.values():
            for ids in _prompts(3, target.device):
                verdicts[compare_with_autoregressive(target, draft, ids, method, new_tokens,
                                                     eos_token_id=[]).verdict] += 1
    return {"device_map": {k: str(v) for k, v in device_map.items()}, **verdicts}


def sharded_section(device: torch.device, new_tokens: int) -> dict:
    """A tiny Llama target sharded over two processes (torchrun; NCCL on two GPUs, gloo on the
    CPU in a dry run) against its unsharded greedy output (:mod:`.sharded_check`)."""
    from .sharded_check import run_sharded_check, save_pair

    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return {"processes": 2, "passed": None, "skipped": "one GPU: sharding needs two (the gloo "
                "path on the CPU is checked by the tests)"}
    target, draft = _tiny("llama"), _noisy(_tiny("llama"))
    ids = _prompts(1, "cpu")[0]
    reference = target.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=new_tokens, pad_token_id=0)[0, ids.shape[1]:].tolist()
    with tempfile.TemporaryDirectory() as folder:
        save_pair(Path(folder), target, draft, ids[0].tolist())
        result = run_sharded_check(Path(folder), reference)
    result.pop("ranks", None)
    return result


def reads_section(device: torch.device, new_tokens: int) -> list[dict]:
    """Reads of device data into Python per iteration (per token for AR), each method on a tiny
    Llama pair whose draft agrees often (:mod:`dynatree_lib.harness.host_reads`)."""
    from ..core.decode import generate
    from ..core.methods import Autoregressive
    from .host_reads import reads_per_iteration

    target = _tiny("llama").to(device)
    draft = _noisy(_tiny("llama"), noise=0.005).to(device)
    ids = _prompts(1, device)[0]
    rows = []
    for label, method in {"Autoregressive()": Autoregressive(), **METHODS}.items():
        generate(target, draft, ids, method, 8, eos_token_id=[])   # warm-up, not counted
        counted = reads_per_iteration(lambda m=method: generate(target, draft, ids, m, new_tokens,
                                                                eos_token_id=[]))
        rows.append({"method": label, "reads": counted["reads"], "iterations": counted["iterations"],
                     "per_iteration": counted["per_iteration"],
                     "most_per_iteration": counted["most_per_iteration"]})
    return rows


@torch.inference_mode()
def _step_times(model, sizes, prefix_len: int, repeats: int) -> dict[str, float]:
    from .costs import forward_cost_curve

    return {str(n): t for n, t in forward_cost_curve(model, tuple(sizes), prefix_len, repeats).items()}


def costs_section(device: torch.device, dry_run: bool, repeats: int, prefix_len: int) -> dict:
    """Forward-cost curve of a Pythia-2.8B-shaped target and one step of a Pythia-70M-shaped draft."""
    dtype = torch.float32 if dry_run else torch.float16
    shapes = {"target": TINY_TARGET, "draft": TINY_DRAFT} if dry_run else {"target": PYTHIA_2_8B,
                                                                          "draft": PYTHIA_70M}
    out = {"dtype": str(dtype).removeprefix("torch."), "prefix_len": prefix_len, "repeats": repeats,
           "configs": {role: ("tiny " if dry_run else "") + f"GPTNeoX {c['num_hidden_layers']} layers x "
                       f"{c['hidden_size']}" for role, c in shapes.items()}}
    for role, shape in shapes.items():
        start = time.perf_counter()
        with torch.device(device):
            model = GPTNeoXForCausalLM(GPTNeoXConfig(**shape)).to(dtype).eval()
        out[f"{role}_build_seconds"] = time.perf_counter() - start
        out[f"{role}_parameters"] = sum(p.numel() for p in model.parameters())
        sizes = COST_SIZES if role == "target" else (1,)
        out[f"{role}_curve"] = _step_times(model, sizes, prefix_len, repeats)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out["ar_step"] = out["target_curve"]["1"]
    out["draft_step"] = out["draft_curve"]["1"]
    out["draft_cost_ratio"] = out["draft_step"] / out["ar_step"]
    return out


def run_gpu_check(device: str | torch.device | None = None, dry_run: bool = False, *, prompts: int = 3,
                  new_tokens: int = 32, repeats: int = 5, prefix_len: int = 256, command: str = "") -> dict:
    """Run the sections; returns the document (validated)."""
    from transformers.utils import logging as hf_logging

    from .environment import environment
    from .schema import validate

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # "some parameters are on the meta device": expected when offloading
    device = torch.device(device or ("cpu" if dry_run else "cuda"))
    if device.type != "cuda" and not dry_run:
        raise RuntimeError("gpu-check needs a CUDA device (torch.cuda.is_available() is False); "
                           "python -m dynatree_lib gpu-check --dry-run runs it on the CPU with tiny models")
    started = now(device)
    doc = {"schema": SCHEMA, "dry_run": dry_run, "command": command,
           "environment": environment(device, torch.float16 if not dry_run else torch.float32),
           "exactness": exactness_section(device, prompts, new_tokens),
           "split": split_section(device, new_tokens),
           "costs": costs_section(device, dry_run, repeats, prefix_len if not dry_run else 32),
           "host_reads": reads_section(device, 48),
           "sharded": sharded_section(device, 24)}
    doc["passed"] = (all(row["mismatch"] == 0 for row in doc["exactness"]) and doc["split"]["mismatch"] == 0
                     and doc["split"]["near-tie"] == 0 and doc["sharded"]["passed"] is not False
                     and all(row["most_per_iteration"] <= READ_BUDGET for row in doc["host_reads"]))
    doc["seconds"] = now(device) - started
    doc["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return validate(doc, SCHEMA)


def default_name(doc: dict) -> str:
    """``gpu_check_<gpu name>.json`` (``gpu_check_dry-run.json`` for a dry run)."""
    from .environment import result_name

    if doc["dry_run"]:
        return result_name("gpu_check", "dry-run")
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", doc["environment"]["device_name"]).strip("-")
    return result_name("gpu_check", gpu)


def summary(doc: dict) -> str:
    """A few lines for the terminal."""
    lines = [f"gpu-check on {doc['environment']['device_name']} (torch {doc['environment']['torch']}, "
             f"transformers {doc['environment']['transformers']}){' DRY RUN' if doc['dry_run'] else ''}: "
             f"{'PASSED' if doc['passed'] else 'FAILED'} in {doc['seconds']:.0f} s"]
    for row in doc["exactness"]:
        lines.append(f"  {row['arch']:6s}{row['dtype']:10s}{row['method']:24s} identical "
                     f"{row['identical']} near-tie {row['near-tie']} mismatch {row['mismatch']}")
    split = doc["split"]
    lines.append(f"  split target: identical {split['identical']} near-tie {split['near-tie']} "
                 f"mismatch {split['mismatch']}")
    c = doc["costs"]
    curve = c["target_curve"]
    lines.append(f"  target ({c['configs']['target']}, {c['dtype']}): one step {1000 * c['ar_step']:.2f} ms; "
                 + " ".join(f"{n}:{t / curve['1']:.2f}" for n, t in curve.items()))
    lines.append(f"  draft ({c['configs']['draft']}): one step {1000 * c['draft_step']:.2f} ms "
                 f"= {c['draft_cost_ratio']:.3f} of a target step")
    sharded = doc["sharded"]
    lines.append(f"  sharded target over {sharded['processes']} processes: " + (
        sharded["skipped"] if sharded.get("skipped") else
        f"identical to unsharded: {sharded.get('identical_to_unsharded')}, passed: {sharded['passed']}"))
    lines.append("  reads of device data per iteration (mean, most): " + ", ".join(
        f"{row['method']} {row['per_iteration']:.1f}, {row['most_per_iteration']:.3g}"
        for row in doc["host_reads"]))
    return "\n".join(lines)
