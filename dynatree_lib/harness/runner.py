"""One generation of one method on one prompt, ours or a Hugging Face peer, timed alike.

Both ``compare`` (one prompt, a quick side-by-side) and ``bench`` (the benchmark
protocol over a prompt set) run every method through :func:`run_method`, so a number
means the same thing wherever it is printed.

Peers (Hugging Face ``generate``, same models, greedy): ``hf`` (plain), ``hf-assisted``
(``assistant_model=draft``, its default schedule) and ``prompt-lookup``
(``prompt_lookup_num_tokens``). Their target/draft forwards are counted with hooks.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass, field

import torch

from ..core.decode import generate
from ..core.growth import METHODS, method_entry
from ..core.timing import now, synchronize

OUR_METHODS = {name: entry.config for name, entry in METHODS.items()}  # the core's table, by name
HF_METHODS = ("hf", "hf-assisted", "prompt-lookup")
PROMPT_LOOKUP_TOKENS = 10


@dataclass
class MethodSpec:
    """A named method of a run: one of ours with its config, or an HF peer."""

    label: str
    kind: str                        # a name in core's METHODS, or hf | hf-assisted | prompt-lookup
    config: dict = field(default_factory=dict)
    drafter: str = "default"         # our methods: one of the pair's drafters by name, or its default

    def build(self):
        return OUR_METHODS[self.kind](**self.config)


def spec(kind: str, label: str | None = None, drafter: str = "default", **config) -> MethodSpec:
    """A validated :class:`MethodSpec` (our configs record every field, defaults included)."""
    if kind not in OUR_METHODS and kind not in HF_METHODS:
        raise ValueError(f"unknown method {kind!r}: choose from {sorted([*OUR_METHODS, *HF_METHODS])}")
    if not isinstance(drafter, str) or not drafter or (drafter not in ("default", "model")
                                                       and kind not in OUR_METHODS):
        raise ValueError(f"drafter must be 'default' or the name of one of the pair's drafters ('model', "
                         f"'head', ...; other drafters than the model draft for our methods only), "
                         f"got {drafter!r} for {kind!r}")
    if kind in OUR_METHODS:
        config = asdict(OUR_METHODS[kind](**config))  # validates and records every field
    default_label = kind if drafter in ("default", "model") else f"{kind}@{drafter}"
    return MethodSpec(label or default_label, kind, config, drafter)


def spec_of(method) -> MethodSpec:
    """The spec of a method config object (``Linear(k=4)`` -> kind "linear")."""
    return MethodSpec(type(method).__name__, method_entry(method).name, asdict(method))


def check_drafters(pair, methods: list[MethodSpec]) -> None:
    """Before a long run: every drafter the methods name exists in ``pair``."""
    for method in methods:
        if method.drafter != "default":
            pair.check_drafter(method.drafter)


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

    def __init__(self, start: float, device) -> None:
        self.start, self.device, self.puts, self.ttft = start, device, 0, None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2 and self.ttft is None:  # the first put is the prompt
            self.ttft = now(self.device) - self.start

    def end(self) -> None:
        pass


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: max_memory_allocated since the last reset; CPU: the process's peak RSS so far."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def run_method(method: MethodSpec, pair, input_ids: torch.Tensor, max_new_tokens: int, *,
               stop_at_eos: bool = False, sampling: dict | None = None, seed: int = 0) -> dict:
    """One generation on ``pair`` (a :class:`~dynatree_lib.models.ModelPair`); returns its record
    (tokens, timings, forwards, tau, acceptance, ...).

    Our methods draft with the pair's drafter ``method.drafter`` names ("default": the pair's
    default); HF assisted generation always uses the causal-LM draft ``pair.draft``.
    By default EOS is ignored, so every method writes exactly ``max_new_tokens`` (the paper's
    protocol); ``stop_at_eos=True`` stops at the target's generation_config EOS, as a chat does.
    ``sampling`` ({"temperature", "top_k", "top_p"}) samples instead of decoding greedily, every
    method from the same ``seed`` (ours through a ``torch.Generator``, HF's through the global one).
    """
    chosen = pair.default_drafter if method.drafter == "default" else method.drafter
    target, draft = pair.target, pair.draft
    if method.kind in OUR_METHODS:
        if chosen not in pair.drafters:
            raise ValueError(f"{method.label} drafts with {chosen!r}, but this pair has only: "
                             f"{', '.join(pair.drafters)}")
        draft = pair.drafters[chosen]
    eos = None if stop_at_eos else []
    device = target.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if method.kind in OUR_METHODS:
        sample = {} if sampling is None else {"do_sample": True, **sampling,
                                                "generator": torch.Generator(device=device).manual_seed(seed)}
        result = generate(target, draft, input_ids, method.build(), max_new_tokens, eos_token_id=eos,
                          **sample)
        s = result.stats
        record = {"tokens": result.new_tokens, "time_total": s.time_total, "ttft": s.ttft,
                  "target_forwards": s.target_forwards, "draft_forwards": s.draft_forwards,
                  "iterations": s.iterations, "acceptance_rate": s.acceptance_rate if s.iterations else None,
                  "tree_efficiency": s.tree_efficiency if s.iterations else None,
                  "accepted_per_depth": s.accepted_per_depth, "time_draft": s.time_draft,
                  "time_verify": s.time_verify, "time_other": s.time_other,
                  "accepted_by_source": {"all": sum(s.accepted), "drafter": sum(s.accepted_drafted),
                                         "lookup": sum(s.accepted_lookup)}}
        if s.measured_costs is not None:
            record["measured_costs"] = s.measured_costs
        if s.threshold:
            record["mean_threshold"] = sum(s.threshold) / len(s.threshold)
            record["mean_base_depth"] = sum(s.base_depth) / len(s.base_depth)
        if s.controller_bounds is not None:
            record["controller_bounds"] = s.controller_bounds
            record["controller_at_bound"] = s.controller_bounds["any"]
        if s.tree_sizes:
            record["mean_tree_size"] = sum(s.tree_sizes) / len(s.tree_sizes)
            record["mean_lookup_nodes"] = sum(s.lookup_nodes) / len(s.lookup_nodes)
    else:
        record = _run_hf(method, target, draft, input_ids, max_new_tokens, eos, sampling, seed)
    n = len(record["tokens"])
    record["new_tokens"] = n
    record["drafter"] = chosen if method.kind in OUR_METHODS and METHODS[method.kind].drafts else None
    record["throughput"] = n / record["time_total"]
    record["tpot"] = (record["time_total"] - record["ttft"]) / (n - 1) if n > 1 else None
    record["tau"] = n / record["target_forwards"]
    record["peak_memory_bytes"] = peak_memory_bytes(device)
    return record


@torch.inference_mode()
def _run_hf(method: MethodSpec, target, draft, input_ids, max_new_tokens, eos, sampling=None, seed=0) -> dict:
    kwargs = dict(do_sample=False, max_new_tokens=max_new_tokens, attention_mask=torch.ones_like(input_ids),
                  pad_token_id=0)
    if sampling is not None:
        kwargs.update(do_sample=True, **sampling)
        torch.manual_seed(seed)
    if eos is not None:  # an explicit None would switch off the generation_config's EOS
        kwargs["eos_token_id"] = eos
    if method.kind == "hf-assisted":
        kwargs["assistant_model"] = draft
    elif method.kind == "prompt-lookup":
        kwargs["prompt_lookup_num_tokens"] = PROMPT_LOOKUP_TOKENS
    counters = (_Counter(target), _Counter(draft if method.kind == "hf-assisted" else None))
    device = target.device
    start = now(device)
    clock = _FirstTokenClock(start, device)
    try:
        out = target.generate(input_ids, streamer=clock, **kwargs)
        elapsed = now(device) - start
    finally:
        synchronize(device)
        for counter in counters:
            counter.close()
    return {"tokens": out[0, input_ids.shape[1]:].tolist(), "time_total": elapsed,
            "ttft": clock.ttft if clock.ttft is not None else elapsed,
            "target_forwards": counters[0].calls, "draft_forwards": counters[1].calls,
            "iterations": None, "acceptance_rate": None, "tree_efficiency": None,
            "accepted_per_depth": None}
