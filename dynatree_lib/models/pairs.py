"""Model pairs: ``load_pair()`` gives a target, a draft and their shared tokenizer.

Presets:

* ``"embedded"``: SmolLM2-135M-Instruct + the distilled shortlist draft and the feature head
  (``feature_head.py``), offline, float32; the default on CPU. ``drafter`` picks which one our
  methods use (``pair.drafter``, default: the head); HF assisted generation can only use the
  causal-LM draft. ``dtype=torch.bfloat16`` is faster on CPUs with bfloat16 matrix units
  (chapter 5), but its greedy text is the bfloat16 model's, and speculation matches it up to
  near-ties (``exactness``); float32 stays the default because there every output is identical.
  ``dtype="auto"`` measures instead (``dtype_choice.py``): bfloat16 only on a CPU with native
  bfloat16 where it times faster, float32 elsewhere; ``pair.dtype_choice`` says why.
* ``"pythia"``: EleutherAI/pythia-2.8b + EleutherAI/pythia-70m from the Hugging Face Hub,
  float16; the paper's pair and the default on CUDA.
* ``(target_id_or_path, draft_id_or_path)``: any other pair with the same tokenizer.

``DYNATREE_PAIR`` (a preset name or ``target,draft``) overrides the default pair and
``DYNATREE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ...) the default device, so tests and
notebooks can pin the embedded pair on the CPU of a machine that has a GPU.
On CPU in float32 both models get oneDNN-packed linear weights (``packing.py``):
the same computation for every method alike (faster or slower per model and CPU: the cost curves
of ``python -m dynatree_lib costs`` tell); ``pack_weights=False`` opts out.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.parse
from dataclasses import dataclass, field

import torch

from .sharding import sharding_kwargs, world

PYTHIA = ("EleutherAI/pythia-2.8b", "EleutherAI/pythia-70m")


# The embedded pair's default drafter for our methods: the faster one on the Spec-Bench subset,
# the chat workload the target exists for (spec_bench_embedded_cpu.json: DynaTree with the head
# beats it with the draft model prompt by prompt); the other is load_pair("embedded", drafter=...).
EMBEDDED_DRAFTER = "head"


@dataclass
class ModelPair:
    """A target and its drafters by name. ``draft`` is the causal-LM draft (what HF assisted
    generation and the paper use), always ``drafters["model"]``; a pair may hold any number
    of other drafters (the embedded pair: ``"head"``, the feature head). ``default_drafter``
    names the one our methods use unless told otherwise (``pair.drafter``)."""

    target: torch.nn.Module
    draft: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype
    packed: bool = False  # linear weights packed for oneDNN (CPU float32 fast path)
    drafters: dict[str, object] = field(default_factory=dict)
    default_drafter: str = "model"
    shards: int = 1       # processes the target is sharded over (torchrun; models/sharding.py)
    dtype_choice: str | None = None  # why dtype="auto" chose the dtype (models/dtype_choice.py)

    def __post_init__(self) -> None:
        self.drafters = {"model": self.draft, **self.drafters}
        self.check_drafter(self.default_drafter)

    def check_drafter(self, name: str) -> None:
        """Raise ValueError unless the pair has a drafter called ``name``."""
        if name not in self.drafters:
            raise ValueError(f"the {self.name} pair has no drafter {name!r}; "
                             f"it has: {', '.join(self.drafters)}")

    @property
    def drafter(self):
        """What our methods draft with by default: ``drafters[default_drafter]``."""
        return self.drafters[self.default_drafter]

    @property
    def head(self):
        """The feature head's drafter, or None (only the embedded pair has one)."""
        return self.drafters.get("head")

    def describe(self) -> str:
        """One line: which pair, where, in which dtype, which drafters."""
        others = "".join(f", {name} {drafter_name(d)}" for name, d in self.drafters.items()
                         if name != "model")
        return (f"pair {self.name} on {self.device} ({str(self.dtype).removeprefix('torch.')}"
                f"{', packed weights' if self.packed else ''}"
                f"{f', target sharded over {self.shards} processes' if self.shards > 1 else ''}); "
                f"draft {drafter_name(self.draft)}{others}; "
                f"our methods draft with {DRAFTER_TITLES.get(self.default_drafter, self.default_drafter)}"
                f"{f'; dtype auto: {self.dtype_choice}' if self.dtype_choice else ''}")


DRAFTER_TITLES = {"model": "the draft model", "head": "the feature head"}


def drafter_name(drafter) -> str:
    """What a drafter is: its weights or hub name (a model's ``_name_or_path``, a drafter's ``name``)."""
    config = getattr(drafter, "config", None)
    return getattr(drafter, "name", None) or getattr(config, "_name_or_path", "") or type(drafter).__name__


def default_dtype(name: str, device: torch.device) -> torch.dtype:
    """What ``load_pair`` picks without ``dtype``: float32, but float16 for hub pairs on CUDA."""
    return torch.float16 if device.type == "cuda" and name != "embedded" else torch.float32


def default_device() -> torch.device:
    """``$DYNATREE_DEVICE`` if set, else CUDA when available, else the CPU."""
    override = os.environ.get("DYNATREE_DEVICE")
    if override:
        return torch.device(override)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_pair(name: str | tuple[str, str] | None = None, *, device: str | torch.device | None = None,
              dtype: torch.dtype | str | None = None, pack_weights: bool = True,
              drafter: str | None = None, shard: bool | None = None) -> ModelPair:
    """Load a (target, draft) pair; see the module docstring for names and defaults.

    ``drafter``: the name of the drafter our methods use by default, "model" (the causal-LM
    draft) or "head" (the feature head, embedded pair only); default: ``EMBEDDED_DRAFTER`` for
    the embedded pair, "model" otherwise.
    ``shard``: load a hub target with transformers' tensor-parallel plan across the processes of
    a ``torchrun`` launch, the draft whole on every process (``models/sharding.py``); None (the
    default) shards when run under torchrun with more than one process. The embedded target
    (9 attention heads, an embedding the draft shares) is never sharded.
    ``dtype="auto"``: the embedded pair on a CPU in bfloat16 where the CPU has native bfloat16
    and it measures faster there, else float32 (``dtype_choice.py``; a few seconds of timing
    on such a CPU); other pairs and devices get their default dtype.
    """
    if drafter not in (None, "model", "head"):
        raise ValueError(f"drafter must be 'model' or 'head', got {drafter!r}")
    from transformers.utils import logging as hf_logging

    choice = None
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # loading bars would fill notebooks and logs
    try:
        if isinstance(dtype, str):
            dtype, choice = _auto_dtype(dtype, name, device, pack_weights)
        pair = _load(name, device, dtype, shard)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if pack_weights:
        from .packing import pack_linear_weights

        pair.packed = bool(pack_linear_weights(pair.target)) and bool(pack_linear_weights(pair.draft))
        if pair.head is not None:
            pack_linear_weights(pair.head.head)
    wanted = drafter or (EMBEDDED_DRAFTER if pair.name == "embedded" else "model")
    if wanted == "head" and pair.head is None:
        raise ValueError(f"the {pair.name} pair has no feature head (only the embedded pair has one)")
    pair.check_drafter(wanted)
    pair.default_drafter = wanted
    pair.dtype_choice = choice
    return pair


def _auto_dtype(dtype: str, name, device, pack_weights: bool) -> tuple[torch.dtype, str]:
    """``load_pair(dtype="auto")``'s choice and why (``dtype_choice.py``)."""
    if dtype != "auto":
        raise ValueError(f"dtype must be a torch.dtype or 'auto', got {dtype!r}")
    from . import dtype_choice

    device = torch.device(device) if device is not None else default_device()
    resolved = _pair_name(name, device)
    if resolved != "embedded" or device.type != "cpu":
        chosen = default_dtype(str(resolved), device)
        return chosen, (f"{str(chosen).removeprefix('torch.')}: 'auto' measures only the embedded "
                        f"pair on a CPU")
    if not dtype_choice.native_bfloat16():
        return dtype_choice.choose_dtype(False)
    from .embedded import cache_dir, load_embedded_target
    from .packing import pack_linear_weights

    def decide():
        float32, _ = load_embedded_target(device, torch.float32)
        if pack_weights:
            pack_linear_weights(float32)  # as load_pair runs float32; bfloat16 runs unpacked
        bfloat16, _ = load_embedded_target(device, torch.bfloat16)
        return dtype_choice.choose_dtype(True, dtype_choice.measure(float32, bfloat16))

    key = f"{dtype_choice.machine_key()}-{'packed' if pack_weights else 'default'}"
    return dtype_choice.remembered(cache_dir() / "dtype-auto.json", key, decide)


def _pair_name(name, device: torch.device):
    """The preset or (target, draft) ``load_pair`` loads: ``name``, else ``$DYNATREE_PAIR``, else
    the device's default."""
    if name is None:
        name = os.environ.get("DYNATREE_PAIR") or ("pythia" if device.type == "cuda" else "embedded")
    return name


def _load(name, device, dtype, shard: bool | None = None) -> ModelPair:
    device = torch.device(device) if device is not None else default_device()
    name = _pair_name(name, device)
    if isinstance(name, str) and "," in name:
        name = tuple(part.strip() for part in name.split(","))
    if name == "embedded":
        if shard:
            raise ValueError("the embedded target cannot be sharded (9 attention heads, an embedding "
                             "the draft shares): run it whole on every process, shard=False")
        from .embedded import load_embedded_draft, load_embedded_target
        from .feature_head import HEAD_WEIGHTS, FeatureDrafter, load_head

        dtype = dtype or torch.float32
        target, tokenizer = load_embedded_target(device, dtype)
        head = FeatureDrafter(load_head(target), target) if HEAD_WEIGHTS.is_file() else None
        return ModelPair(target, load_embedded_draft(target), tokenizer, "embedded", device, dtype,
                         drafters={} if head is None else {"head": head})
    if name == "pythia":
        pair, label = PYTHIA, "pythia"
    elif isinstance(name, tuple) and len(name) == 2:
        pair, label = name, f"{name[0]},{name[1]}"
    else:
        raise ValueError(f"unknown pair {name!r}: use 'embedded', 'pythia' or (target, draft)")
    dtype = dtype or default_dtype(label, device)
    shards = world()[1] if shard or shard is None else 1
    if shard and shards == 1:
        raise ValueError("shard=True needs several processes: launch with torchrun --nproc_per_node N")
    target, tokenizer = _from_hub(pair[0], device, dtype, sharded=shards > 1)
    draft, draft_tokenizer = _from_hub(pair[1], target.device, dtype)
    check_tokenizers(tokenizer, draft_tokenizer)
    return ModelPair(target, draft, tokenizer, label, target.device, dtype, shards=shards)


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the hub (or ``HF_ENDPOINT``), instead of minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(model_id: str, device: torch.device, dtype: torch.dtype, sharded: bool = False):
    """(model, tokenizer) from the hub or a local folder; ``sharded``: tensor-parallel across the
    processes of a torchrun launch, each on the device transformers binds to its rank."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = os.path.isdir(model_id) or not hub_reachable()  # unreachable hub: the local cache only
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=local)
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype, attn_implementation="sdpa",
                                                     local_files_only=local,
                                                     **(sharding_kwargs() if sharded else {}))
    except OSError as error:
        where = "the Hugging Face Hub is unreachable and it is not in the local cache" if local and not \
            os.path.isdir(model_id) else str(error).splitlines()[0]
        raise RuntimeError(f"cannot load {model_id!r}: {where}; offline, use load_pair('embedded')") from None
    return (model if sharded else model.to(device)).eval(), tokenizer


def check_tokenizers(target_tokenizer, draft_tokenizer) -> None:
    """Target and draft must map text to the same ids."""
    if target_tokenizer.get_vocab() != draft_tokenizer.get_vocab():
        raise ValueError("target and draft tokenizers differ: speculative decoding needs the same vocabulary")
