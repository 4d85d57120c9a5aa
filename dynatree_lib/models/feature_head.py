"""A draft that reads the target: a one-layer head over the target's own hidden states.

EAGLE's observation {li2024eagle}: the target's last hidden state at position i already
encodes what comes next, so a tiny head that sees it predicts the target far better than
a draft that sees tokens only. The head's input at position i fuses two vectors,

    x_i = W [ f_{i-1} ; e(t_i) ]

the target's last hidden state one position back (or, inside a tree, the head's own
prediction of it) and the embedding of token t_i; one decoder layer with its own KV cache
turns x_i into a predicted state f^_i, and the target's output rows for a shortlist of the
vocabulary turn f^_i into the draft distribution q(. | t_1..t_i). Only the fusion matrix,
the decoder layer and a norm are trained and stored (int8, a few MB); the embedding and the
output rows are the target's, shared at load time.

:class:`FeatureDrafter` plugs the head into the :mod:`dynatree_lib.core.drafter` interface, so
Linear, FixedTree and DynaTree grow trees with it unchanged: the root's input uses the
verified state of the last accepted token (from the verify forward the target runs anyway),
deeper nodes use their parent's predicted state, each level in one forward under the tree
mask. After verification the head's tree entries are dropped; the accepted tokens are fed
again with their verified states when the next tree begins.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import DynamicCache, LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRMSNorm, LlamaRotaryEmbedding

from ..core.kv import keep_cache_entries
from ..core.transfer import to_device
from ..core.tree import TokenTree, additive_mask
from .quantize import dequantize_state, quantize_state

HEAD_WEIGHTS = Path(__file__).parent / "weights" / "embedded_head.safetensors"


def head_config(target_config: LlamaConfig) -> LlamaConfig:
    """The target's config with one layer: the head's decoder layer has the target's shapes."""
    config = LlamaConfig(**{k: v for k, v in target_config.to_dict().items()
                            if k not in ("architectures", "_name_or_path", "transformers_version")})
    config.num_hidden_layers = 1
    config._attn_implementation = "sdpa"
    return config


class FeatureHead(nn.Module):
    """Fusion + one Llama decoder layer + norm, and the target's output rows for a shortlist.

    ``forward(features [B, T, H], tokens [B, T], positions [B, T], mask, cache)`` -> predicted
    states [B, T, H]; ``scores(states)`` -> [.., S] logits over ``shortlist``.
    """

    def __init__(self, config: LlamaConfig, shortlist: Tensor, embedding: nn.Embedding,
                 output_rows: Tensor) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.config = config
        self.fuse = nn.Linear(2 * hidden, hidden, bias=False)
        self.layer = LlamaDecoderLayer(config, layer_idx=0)
        self.norm = LlamaRMSNorm(hidden, eps=config.rms_norm_eps)
        self.rotary = LlamaRotaryEmbedding(config)
        self.register_buffer("shortlist", shortlist.clone().long(), persistent=False)
        self.embedding = embedding                       # the target's, not trained, not stored
        self.output = nn.Linear(hidden, shortlist.numel(), bias=False)
        with torch.no_grad():
            self.output.weight.copy_(output_rows)        # the target's rows, not trained, not stored
        self.output.weight.requires_grad_(False)

    def forward(self, features: Tensor, tokens: Tensor, positions: Tensor, mask: Tensor | None = None,
                cache: DynamicCache | None = None) -> Tensor:
        x = self.fuse(torch.cat([features, self.embedding(tokens)], dim=-1))
        rope = self.rotary(x, positions)
        x = self.layer(x, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=cache is not None, position_embeddings=rope)
        return self.norm(x)

    def scores(self, states: Tensor) -> Tensor:
        return self.output(states)

    def trainable_state(self) -> dict[str, Tensor]:
        """What is trained and stored: fusion, decoder layer, norm (not the shared rows)."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith(("embedding.", "output.", "rotary."))}


def build_head(target, shortlist: Tensor, init_from_last_layer: bool = True) -> FeatureHead:
    """A head for ``target`` (a Llama), its decoder layer and norm started from the target's last."""
    if not hasattr(target, "model") or not hasattr(target.model, "layers"):
        raise ValueError(f"the feature head is built for Llama-style targets, not {type(target).__name__}")
    config = head_config(target.config)
    rows = target.get_output_embeddings().weight.detach()[shortlist.to(target.device)]
    head = FeatureHead(config, shortlist, target.get_input_embeddings(), rows)
    with torch.no_grad():
        hidden = config.hidden_size
        head.fuse.weight.zero_()
        head.fuse.weight[:, :hidden].copy_(torch.eye(hidden))        # start: pass the state through
        head.fuse.weight[:, hidden:].normal_(0.0, 0.02, generator=torch.Generator().manual_seed(0))
        if init_from_last_layer:
            head.layer.load_state_dict(target.model.layers[-1].state_dict())
            head.norm.load_state_dict(target.model.norm.state_dict())
    return head.to(target.device, target.dtype)


def save_head(head: FeatureHead, path: Path, meta: dict) -> None:
    """int8 matrices with per-row scales, in a safetensors file (no pickle, no code)."""
    from safetensors.torch import save_file


    tensors = {k: v.contiguous().cpu() for k, v in quantize_state(head.trainable_state()).items()}
    tensors["shortlist"] = head.shortlist.cpu().int()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"meta": json.dumps(meta)})


def load_head(target, path: Path = HEAD_WEIGHTS) -> FeatureHead:
    """Rebuild a trained head for ``target`` from ``path`` (the shared parts come from the target)."""
    from safetensors import safe_open
    from safetensors.torch import load_file


    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: train it with python -m dynatree_lib.train.head")
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    shortlist = tensors.pop("shortlist").long()
    head = build_head(target, shortlist, init_from_last_layer=False)
    state = dequantize_state(tensors)
    missing, unexpected = head.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("embedding.", "output.", "rotary.")) for k in missing):
        raise ValueError(f"{path} does not match the head's architecture: {missing} {unexpected}")
    head.meta = meta
    head.name = f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    return head.to(target.device, target.dtype).eval()


class FeatureDrafter:
    """The :class:`FeatureHead` behind the drafter interface (``drafters.Drafter``).

    Keeps the target's verified states of committed positions it has not fed yet, the head's
    KV cache over committed positions (entry j is position j + 1: position 0 has no state
    before it), and, while a tree grows, the predicted state of every fed node.
    """

    needs_hidden = True

    def __init__(self, head: FeatureHead, target) -> None:
        self.head = head
        self.vocab = target.config.vocab_size
        self.config = head.config
        self.name = getattr(head, "name", "feature head")
        self.forwards = 0
        self.cache: DynamicCache | None = None
        self.states: list[Tensor] = []     # verified states of positions cached .. cached + len - 1
        self.predicted: Tensor | None = None

    device = property(lambda self: self.head.norm.weight.device)
    dtype = property(lambda self: self.head.norm.weight.dtype)

    def vocab_size(self) -> int:
        return self.vocab

    def validate(self, target, tokens: int) -> None:
        config = target.config
        if config.hidden_size != self.head.config.hidden_size or config.vocab_size != self.vocab:
            raise ValueError("this feature head was built for another target (hidden size or vocabulary "
                             "differ)")
        window = self.head.config.max_position_embeddings
        if tokens > window:
            raise ValueError(f"prompt + max_new_tokens exceeds the head's context window of {window}")

    def check_cache(self, tokens: int) -> None:
        pass  # full attention, no sliding window

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.head.config)
        self.forwards = 0
        self.states = []
        self.predicted = None

    def observe(self, hidden: Tensor) -> None:
        """The target's states of the prompt's positions (from the prefill)."""
        self.states = [hidden]

    def _full_logits(self, states: Tensor) -> Tensor:
        scores = self.head.scores(states)
        logits = scores.new_full((*scores.shape[:-1], self.vocab), torch.finfo(scores.dtype).min)
        return logits.index_copy_(-1, self.head.shortlist, scores)

    def begin(self, sequence: Tensor, prefix_len: int) -> Tensor:
        cached = self.cache.get_seq_length()           # head entries = positions 1 .. cached
        states = torch.cat(self.states)                 # verified states, positions cached .. prefix_len-1
        tokens = sequence[cached + 1:prefix_len + 1]    # tokens at positions cached + 1 .. prefix_len (root)
        positions = torch.arange(cached + 1, prefix_len + 1, device=sequence.device).unsqueeze(0)
        n = tokens.numel()  # causal over the new entries, everything cached is visible
        allowed = torch.ones(n, cached + n, dtype=torch.bool, device=sequence.device).tril(diagonal=cached)
        out = self.head(states[:n].unsqueeze(0), tokens.unsqueeze(0), positions,
                        additive_mask(allowed, self.dtype), self.cache)
        self.forwards += 1
        self.states = []
        self.predicted = torch.zeros(1, out.shape[-1], device=out.device, dtype=out.dtype)
        self.predicted[0] = out[0, -1]                  # the root's predicted state
        self._nodes: list[Tensor] = [torch.zeros(1, dtype=torch.long, device=sequence.device)]
        return self._full_logits(out[0, -1])

    def expand(self, tree: TokenTree, frontier: Tensor, prefix_len: int, depth: int) -> Tensor:
        device = frontier.device
        if self.predicted.shape[0] < tree.capacity:     # room for every node's predicted state
            grown = self.predicted.new_zeros(tree.capacity, self.predicted.shape[1])
            grown[: self.predicted.shape[0]] = self.predicted
            self.predicted = grown
        fed = torch.cat(self._nodes[1:]) if len(self._nodes) > 1 else frontier[:0]
        order = torch.cat([fed, frontier])
        committed = self.cache.get_seq_length() - fed.numel()
        allowed = torch.ones(frontier.numel(), committed + order.numel(), dtype=torch.bool, device=device)
        allowed[:, committed:] = tree._ancestors[frontier][:, order]
        parents = tree._parents[frontier]
        positions = torch.full((1, frontier.numel()), prefix_len + depth, device=device)
        out = self.head(self.predicted[parents].unsqueeze(0), tree._tokens[frontier].unsqueeze(0), positions,
                        additive_mask(allowed, self.dtype), self.cache)
        self.forwards += 1
        self.predicted[frontier] = out[0]
        self._nodes.append(frontier)
        return self._full_logits(out[0])

    def accept(self, tree: TokenTree, path: list[int], prefix_len: int, hidden: Tensor | None) -> None:
        """Drop the tree's entries (fed with predicted states); keep the verified states of the
        root and the accepted nodes: the next ``begin`` feeds those positions properly."""
        if self.cache is not None and self.cache.get_seq_length() > prefix_len:
            keep_cache_entries(self.cache, prefix_len, torch.zeros(0, dtype=torch.long, device=self.device))
        if hidden is not None:
            self.states.append(hidden[to_device(path, hidden.device)])
