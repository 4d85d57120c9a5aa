"""Benchmarks: the paper's protocol, peer baselines in the same run, validated JSON results.

A run takes a model pair, a prompt set and a list of named methods. After warm-up
prompts that are discarded, every measured prompt runs every method (the order
rotates from prompt to prompt, so machine drift favours no method) and records the
metrics of the book's metrics section; aggregates are mean and std over prompts.
Every output is compared with our greedy AR output on the same prompt: a mismatch
is recorded per prompt and reported loudly, never averaged away.

Peers (Hugging Face ``generate``, same models, greedy): ``hf`` (plain), ``hf-assisted``
(``assistant_model=draft``, its default schedule) and ``prompt-lookup``
(``prompt_lookup_num_tokens``). Their target/draft forwards are counted with hooks.
"""

from __future__ import annotations

import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .decode import generate
from .methods import Autoregressive, DynaTree, FixedTree, Linear

SCHEMA = "dynatree-bench/1"
OUR_METHODS = {"ar": Autoregressive, "linear": Linear, "fixed": FixedTree, "dynatree": DynaTree}
HF_METHODS = ("hf", "hf-assisted", "prompt-lookup")
PROMPT_LOOKUP_TOKENS = 10


@dataclass
class MethodSpec:
    """A named method of a run: one of ours with its config, or an HF peer."""

    label: str
    kind: str                        # ar | linear | fixed | dynatree | hf | hf-assisted | prompt-lookup
    config: dict = field(default_factory=dict)

    def build(self):
        return OUR_METHODS[self.kind](**self.config)


def spec(kind: str, label: str | None = None, **config) -> MethodSpec:
    if kind not in OUR_METHODS and kind not in HF_METHODS:
        raise ValueError(f"unknown method {kind!r}: choose from {sorted([*OUR_METHODS, *HF_METHODS])}")
    if kind in OUR_METHODS:
        config = asdict(OUR_METHODS[kind](**config))  # validates and records every field
    return MethodSpec(label or kind, kind, config)


class _Counter:
    """Counts forwards of a model through a pre-hook."""

    def __init__(self, model) -> None:
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self._hook) if model is not None else None

    def _hook(self, *args) -> None:
        self.calls += 1

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()


class _FirstTokenClock:
    """A ``generate`` streamer that notes when the first new token arrives."""

    def __init__(self, start: float, cuda: bool) -> None:
        self.start, self.cuda, self.puts, self.ttft = start, cuda, 0, None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2 and self.ttft is None:  # the first put is the prompt
            if self.cuda:
                torch.cuda.synchronize()
            self.ttft = time.perf_counter() - self.start

    def end(self) -> None:
        pass


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: max_memory_allocated since the last reset; CPU: the process's peak RSS so far."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def run_method(method: MethodSpec, target, draft, input_ids: torch.Tensor, max_new_tokens: int) -> dict:
    """One generation of ``max_new_tokens`` tokens (EOS ignored); returns its record."""
    device = target.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if method.kind in OUR_METHODS:
        result = generate(target, draft, input_ids, method.build(), max_new_tokens, eos_token_id=[])
        s = result.stats
        record = {"tokens": result.new_tokens, "time_total": s.time_total, "ttft": s.ttft,
                  "target_forwards": s.target_forwards, "draft_forwards": s.draft_forwards,
                  "iterations": s.iterations, "acceptance_rate": s.acceptance_rate if s.iterations else None,
                  "tree_efficiency": s.tree_efficiency if s.iterations else None,
                  "accepted_per_depth": s.accepted_per_depth, "time_draft": s.time_draft,
                  "time_verify": s.time_verify, "time_other": s.time_other}
        if s.tree_sizes:
            record["mean_tree_size"] = statistics.mean(s.tree_sizes)
    else:
        record = _run_hf(method, target, draft, input_ids, max_new_tokens)
    n = len(record["tokens"])
    record["new_tokens"] = n
    record["throughput"] = n / record["time_total"]
    record["tpot"] = (record["time_total"] - record["ttft"]) / (n - 1) if n > 1 else None
    record["tau"] = n / record["target_forwards"]
    record["peak_memory_bytes"] = peak_memory_bytes(device)
    return record


@torch.inference_mode()
def _run_hf(method: MethodSpec, target, draft, input_ids, max_new_tokens) -> dict:
    kwargs = dict(do_sample=False, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                  attention_mask=torch.ones_like(input_ids), pad_token_id=0, eos_token_id=None)
    if method.kind == "hf-assisted":
        kwargs["assistant_model"] = draft
    elif method.kind == "prompt-lookup":
        kwargs["prompt_lookup_num_tokens"] = PROMPT_LOOKUP_TOKENS
    counters = (_Counter(target), _Counter(draft if method.kind == "hf-assisted" else None))
    cuda = target.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    clock = _FirstTokenClock(start, cuda)
    try:
        out = target.generate(input_ids, streamer=clock, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    finally:
        for counter in counters:
            counter.close()
    return {"tokens": out[0, input_ids.shape[1]:].tolist(), "time_total": elapsed,
            "ttft": clock.ttft if clock.ttft is not None else elapsed,
            "target_forwards": counters[0].calls, "draft_forwards": counters[1].calls,
            "iterations": None, "acceptance_rate": None, "tree_efficiency": None,
            "accepted_per_depth": None}


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = _cpu_model()
    return {"device": str(device), "device_name": device_name, "cpu": _cpu_model(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "dtype": str(dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(), "git_commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


METRICS = ("throughput", "speedup", "ttft", "tpot", "tau", "acceptance_rate", "tree_efficiency",
           "iterations", "target_forwards", "draft_forwards", "peak_memory_bytes", "time_total",
           "time_draft", "time_verify", "time_other", "mean_tree_size")


def run_benchmark(pair, prompts: list[list[int]], methods: list[MethodSpec], max_new_tokens: int,
                  warmup: int = 2, *, kind: str = "main", dataset: str = "", protocol: dict | None = None,
                  progress: bool = True) -> dict:
    """Run ``methods`` over ``prompts`` (the first ``warmup`` are discarded); returns the result document."""
    if not any(m.kind == "ar" for m in methods):
        methods = [spec("ar"), *methods]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"method labels must be unique: {labels}")
    if len(prompts) <= warmup:
        raise ValueError(f"need more prompts ({len(prompts)}) than warm-up runs ({warmup})")
    records = []
    total = len(prompts) * len(methods)
    with tqdm(total=total, desc=f"bench {kind}", unit="run", disable=not progress) as bar:
        for index, ids in enumerate(prompts):
            input_ids = torch.tensor([ids], device=pair.device)
            shift = index % len(methods)
            order = methods[shift:] + methods[:shift]  # rotate: A B C, B C A, C A B, ...
            runs = {}
            for method in order:
                bar.set_postfix_str(method.label)
                runs[method.label] = run_method(method, pair.target, pair.draft, input_ids, max_new_tokens)
                bar.update()
            if index < warmup:
                continue
            ar = next(runs[m.label] for m in methods if m.kind == "ar")
            for method in methods:
                record = runs[method.label]
                record.update(prompt_index=index - warmup, prompt_tokens=len(ids), method=method.label,
                              identical_to_ar=record["tokens"] == ar["tokens"],
                              speedup=record["throughput"] / ar["throughput"])
                if not record["identical_to_ar"]:
                    first = next((i for i, (a, b) in enumerate(zip(ar["tokens"], record["tokens"],
                                                                   strict=False)) if a != b), None)
                    record["first_divergence"] = first
                    print(f"WARNING: {method.label} differs from greedy AR on prompt {index - warmup} "
                          f"at new token {first}", file=sys.stderr)
                records.append(record)
    doc = {"schema": SCHEMA, "kind": kind, "environment": environment(pair.device, pair.dtype),
           "pair": {"name": pair.name, "target": _model_name(pair.target), "draft": _model_name(pair.draft),
                    "packed_weights": bool(getattr(pair, "packed", False))},
           "dataset": dataset,
           "protocol": {"num_prompts": len(prompts) - warmup, "warmup": warmup,
                        "max_new_tokens": max_new_tokens, **(protocol or {})},
           "methods": [asdict(m) for m in methods], "records": records,
           "aggregates": aggregate(records, labels)}
    validate(doc)
    return doc


def _model_name(model) -> str:
    return getattr(model.config, "_name_or_path", "") or type(model).__name__


def aggregate(records: list[dict], labels: list[str]) -> dict:
    """{label: {metric: {"mean", "std"}, "identical_to_ar": all, "mismatches": n}} over prompts."""
    out = {}
    for label in labels:
        rows = [r for r in records if r["method"] == label]
        entry = {"prompts": len(rows), "identical_to_ar": all(r["identical_to_ar"] for r in rows),
                 "mismatches": sum(not r["identical_to_ar"] for r in rows)}
        for metric in METRICS:
            values = [r[metric] for r in rows if r.get(metric) is not None]
            if values:
                entry[metric] = {"mean": statistics.mean(values),
                                 "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        out[label] = entry
    return out


REQUIRED = {"schema": str, "kind": str, "environment": dict, "pair": dict, "dataset": str,
            "protocol": dict, "methods": list, "records": list, "aggregates": dict}
RECORD_REQUIRED = {"prompt_index": int, "method": str, "new_tokens": int, "throughput": float,
                   "speedup": float, "tau": float, "identical_to_ar": bool, "time_total": float}


def validate(doc: dict) -> dict:
    """Raise ValueError unless ``doc`` follows the results schema (results/README.md)."""
    for key, kind in REQUIRED.items():
        if not isinstance(doc.get(key), kind):
            raise ValueError(f"results: '{key}' missing or not a {kind.__name__}")
    if doc["schema"] != SCHEMA:
        raise ValueError(f"results: schema {doc['schema']!r}, expected {SCHEMA!r}")
    for key in ("device", "torch", "transformers", "dtype", "date"):
        if key not in doc["environment"]:
            raise ValueError(f"results: environment lacks '{key}'")
    labels = {m["label"] for m in doc["methods"]}
    for i, record in enumerate(doc["records"]):
        for key, kind in RECORD_REQUIRED.items():
            value = record.get(key)
            if not (isinstance(value, kind) or (kind is float and isinstance(value, int)
                                                 and not isinstance(value, bool))):
                raise ValueError(f"results: record {i} field '{key}' missing or not {kind.__name__}")
        if record["method"] not in labels:
            raise ValueError(f"results: record {i} names unknown method {record['method']!r}")
    if set(doc["aggregates"]) != labels:
        raise ValueError("results: aggregates do not cover exactly the methods")
    return doc


def write_results(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    validate(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def read_results(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read results file {path}: {error}") from error
    return validate(doc)


def format_table(doc: dict) -> str:
    """Mean (and std) per method: the main comparison as text."""
    head = f"{'method':<22}{'exact':>6}{'tok/s':>16}{'speedup':>9}{'tau':>7}{'accept':>8}{'TTFT ms':>9}"
    lines = [head]
    for label, a in doc["aggregates"].items():
        tput = a.get("throughput", {})

        def mean(name, scale=1.0, a=a):
            return a[name]["mean"] * scale if name in a else float("nan")

        lines.append(f"{label:<22}{'yes' if a['identical_to_ar'] else 'NO':>6}"
                     f"{tput.get('mean', 0):>9.1f} ±{tput.get('std', 0):>5.1f}{mean('speedup'):>8.2f}x"
                     f"{mean('tau'):>7.2f}{mean('acceptance_rate'):>8.2f}{mean('ttft', 1000):>9.1f}")
    return "\n".join(lines)


# ---- method sets of the experiments ------------------------------------------------------------

# Named variants usable in --methods next to the method kinds.
VARIANTS = {"dynatree+lookup": ("dynatree", {"lookup": PROMPT_LOOKUP_TOKENS})}


def parse_methods(names: str) -> list[MethodSpec]:
    """``"ar,hf,linear,dynatree"`` -> specs with each method's default configuration
    (``dynatree+lookup``: DynaTree with the context-lookup extension, L = 10)."""
    specs = []
    for name in (n.strip() for n in names.split(",")):
        if name in VARIANTS:
            kind, config = VARIANTS[name]
            specs.append(spec(kind, name, **config))
        elif name:
            specs.append(spec(name))
    return specs


def fixed_grid(depths: list[int], branches: list[int], thresholds: list[float],
               max_nodes: int = 256) -> list[MethodSpec]:
    return [spec("fixed", f"fixed D={d} B={b} t={t:g}", depth=d, branch=b, threshold=t, max_nodes=max_nodes)
            for d in depths for b in branches for t in thresholds]


def sensitivity_specs() -> list[MethodSpec]:
    """DynaTree around its defaults: confidence thresholds, branch bounds, depth ranges."""
    specs = [spec("dynatree", "dynatree default")]
    for high, low in ((0.95, 0.5), (0.8, 0.3), (0.7, 0.2), (0.6, 0.1)):
        specs.append(spec("dynatree", f"tau_h={high:g} tau_l={low:g}", tau_high=high, tau_low=low))
    for lo, mid, hi in ((1, 1, 2), (1, 2, 4), (2, 3, 4)):
        specs.append(spec("dynatree", f"B={lo}/{mid}/{hi}", min_branch=lo, mid_branch=mid, max_branch=hi))
    for base, top in ((3, 6), (4, 10), (6, 12)):
        specs.append(spec("dynatree", f"D0={base} Dmax={top}", base_depth=base, max_depth=top))
    return specs


def ablation_specs(depth: int = 8, branch: int = 3, threshold: float = 0.05,
                   max_nodes: int = 256) -> list[MethodSpec]:
    """Fixed tree -> + dynamic breadth and depth -> + history adaptation, with matched limits."""
    return [spec("fixed", "fixed tree", depth=depth, branch=branch, threshold=threshold, max_nodes=max_nodes),
            spec("dynatree", "+ dynamic breadth & depth", max_depth=depth, max_branch=branch,
                 threshold=threshold, max_nodes=max_nodes, adapt=False),
            spec("dynatree", "+ history adaptation", max_depth=depth, max_branch=branch,
                 threshold=threshold, max_nodes=max_nodes, adapt=True)]
