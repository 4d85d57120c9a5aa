"""Target-side verification: one forward over the whole tree, then keep the accepted KV.

The tree is fed after the committed prefix with an additive 4D mask (each node
sees the prefix and its own root path) and ``position_ids = prefix_len + depth``,
so every node's logits equal those of a sequential forward along its path. The
accepted path's KV entries are then moved in place behind the prefix and the
cache is truncated: no crop-and-recompute forward.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor
from transformers import DynamicCache

from .tree import TokenTree


class UnsupportedModelError(ValueError):
    """The model cannot verify a token tree exactly (no 4D mask or no ``position_ids``)."""


def verify_tree(target, cache: DynamicCache, tree: TokenTree, prefix_len: int) -> Tensor:
    """Run the target once over ``tree`` after ``prefix_len`` cached tokens.

    Returns [n] the target's greedy next token after every node. Appends n entries
    to ``cache`` (node i at cache index prefix_len + i).
    """
    logits = tree_logits(target, cache, tree, prefix_len)
    return logits.argmax(dim=-1)


def tree_logits(target, cache: DynamicCache, tree: TokenTree, prefix_len: int,
                position_ids: Tensor | None = None) -> Tensor:
    """[n, V] target logits at every tree node (``position_ids`` overrides depth positions)."""
    if position_ids is None:
        position_ids = tree.position_ids(prefix_len)
    mask = tree.attention_bias(prefix_len, target.dtype)
    out = target(tree.tokens.unsqueeze(0), past_key_values=cache, position_ids=position_ids,
                 attention_mask=mask, use_cache=True)
    return out.logits[0]


def keep_cache_entries(cache: DynamicCache, start: int, index: Tensor) -> None:
    """Keep entries [0, start) and start + index (in that order); drop the rest, in place."""
    for layer in cache.layers:
        for name in ("keys", "values"):
            states = getattr(layer, name)
            kept = states[:, :, start + index]  # advanced indexing copies first: no aliasing
            states[:, :, start:start + index.numel()] = kept
            setattr(layer, name, states[:, :, :start + index.numel()])


def vocab_size(model) -> int:
    """Size of the model's logits: ``config.vocab_size`` (the output layer may be smaller)."""
    size = getattr(model.config, "vocab_size", None)
    return int(size) if size else model.get_output_embeddings().weight.shape[0]


def check_tree_attention(model) -> None:
    """Raise :class:`UnsupportedModelError` unless ``model`` verifies trees exactly.

    Checked once per model object: the forward must accept ``position_ids`` and a
    4D ``attention_mask``, the cache must be a plain (non-sliding) DynamicCache, and a
    probe tree (a root with two sibling children) must give the logits of the two
    sequential forwards along its paths.
    """
    if getattr(model, "_dynatree_tree_ok", False):
        return
    name = type(model).__name__
    params = inspect.signature(model.forward).parameters
    if not {"position_ids", "attention_mask", "past_key_values"} <= params.keys():
        raise UnsupportedModelError(
            f"{name}.forward takes no position_ids/attention_mask/past_key_values: token trees "
            "cannot be verified exactly with this model")
    impl = getattr(model.config, "_attn_implementation", None) or ""
    if impl.startswith("flash"):
        raise UnsupportedModelError(
            f"{name} uses attn_implementation={impl!r}, which ignores 4D tree masks; load the "
            "model with attn_implementation='sdpa' (or 'eager')")
    cache = DynamicCache(config=model.config)
    if any(not type(layer).__name__ == "DynamicLayer" for layer in cache.layers):
        raise UnsupportedModelError(
            f"{name} uses sliding-window or hybrid cache layers, which cannot hold a token tree")
    _probe_tree_attention(model, name)
    model._dynatree_tree_ok = True


@torch.inference_mode()
def _probe_tree_attention(model, name: str) -> None:
    device = model.device
    vocab = vocab_size(model)
    a, b, c, d = (torch.tensor(t % vocab, device=device) for t in (11, 22, 33, 44))
    cache = DynamicCache(config=model.config)
    model(a.view(1, 1), past_key_values=cache, use_cache=True)
    tree = TokenTree(b, 3, device)
    tree.add(torch.tensor([0, 0], device=device), torch.stack([c, d]), torch.zeros(2, device=device))
    got = tree_logits(model, cache, tree, 1).float()
    want = torch.cat([model(torch.stack([a, b, c]).view(1, 3)).logits[0],
                      model(torch.stack([a, b, d]).view(1, 3)).logits[0, 2:]]).float()
    scale = want.abs().max().clamp(min=1.0)
    tolerance = 1e-3 if model.dtype in (torch.float32, torch.float64) else 5e-2
    if ((got - want[[1, 2, 3]]).abs().max() / scale) > tolerance:
        raise UnsupportedModelError(
            f"{name} gives different logits for a token tree than for sequential forwards: its "
            "attention ignores the 4D mask or position_ids, so tree verification would not be exact")
