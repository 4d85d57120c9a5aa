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

from .processors import process_tree
from .tree import TokenTree


class UnsupportedModelError(ValueError):
    """The model cannot verify a token tree exactly (no 4D mask or no ``position_ids``)."""


def verify_tree(target, cache: DynamicCache, tree: TokenTree, prefix_len: int, processors=None,
                sequence: Tensor | None = None, hidden: bool = False,
                scores: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Run the target once over ``tree`` after ``prefix_len`` cached tokens.

    Returns [n] the target's greedy next token after every node, on the tree's device
    (with ``hidden=True`` also [n, H], the target's last hidden state at every node, from the
    same forward). Appends n entries to ``cache`` (node i at cache index prefix_len + i).
    With ``processors`` (from the target's generation_config), each node's logits are first
    processed as ``generate`` would after ``sequence`` [L] (committed tokens, root last)
    followed by the node's path. With ``scores=True`` the [n, V] float32 processed scores
    are returned in place of the greedy tokens (sampling draws from them).
    """
    logits, states = tree_logits(target, cache, tree, prefix_len, hidden=True) if hidden else \
        (tree_logits(target, cache, tree, prefix_len), None)
    logits = logits.to(tree.tokens.device)
    if processors is not None:
        logits = process_tree(processors, sequence, tree, logits)
    chosen = logits.float() if scores else logits.argmax(dim=-1)
    return (chosen, states.to(tree.tokens.device)) if hidden else chosen


def tree_logits(target, cache: DynamicCache, tree: TokenTree, prefix_len: int,
                position_ids: Tensor | None = None, hidden: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """[n, V] target logits at every tree node (``position_ids`` overrides depth positions);
    with ``hidden=True`` also [n, H] the last hidden states (the ones the output layer reads)."""
    if position_ids is None:
        position_ids = tree.position_ids(prefix_len)
    mask = tree.attention_bias(prefix_len, target.dtype)
    out = target(tree.tokens.unsqueeze(0), past_key_values=cache, position_ids=position_ids,
                 attention_mask=mask, use_cache=True, output_hidden_states=hidden)
    return (out.logits[0], out.hidden_states[-1][0]) if hidden else out.logits[0]


def keep_cache_entries(cache: DynamicCache, start: int, index: Tensor) -> None:
    """Keep entries [0, start) and start + index (in that order); drop the rest, in place.

    Layers may live on different devices (a target dispatched with ``device_map``): the
    index follows each layer. A sliding-window layer (which ``generate`` only lets hold
    less than its window) also gets its token count set to the new length.
    """
    length = start + index.numel()
    for layer in cache.layers:
        rows = None
        for name in ("keys", "values"):
            states = getattr(layer, name)
            if rows is None or rows.device != states.device:
                rows = (start + index).to(states.device)
            kept = states[:, :, rows]  # advanced indexing copies first: no aliasing
            states[:, :, start:length] = kept
            setattr(layer, name, states[:, :, :length])
        if hasattr(layer, "cumulative_length"):
            layer.cumulative_length = length


def vocab_size(model) -> int:
    """Size of the model's logits: ``config.vocab_size`` (the output layer may be smaller)."""
    size = getattr(model.config, "vocab_size", None)
    return int(size) if size else model.get_output_embeddings().weight.shape[0]


def check_tree_attention(model) -> None:
    """Raise :class:`UnsupportedModelError` unless ``model`` verifies trees exactly.

    The forward must accept ``position_ids`` and a 4D ``attention_mask``, every cache layer
    must be a plain or sliding-window DynamicCache layer (``generate`` checks a sliding
    window against the context with :func:`check_sliding_window`), and a probe tree (a
    root with two sibling children) must give the logits of the two sequential forwards
    along its paths. A passing probe is remembered per dtype, attention implementation
    and device type, so a model moved to another dtype is probed again.
    """
    key = (str(model.dtype), getattr(model.config, "_attn_implementation", None), model.device.type)
    passed = model.__dict__.setdefault("_dynatree_probed", set())
    if key in passed:
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
    odd = {type(layer).__name__ for layer in cache.layers} - {"DynamicLayer", "DynamicSlidingWindowLayer"}
    if odd:
        raise UnsupportedModelError(
            f"{name} uses {', '.join(sorted(odd))} cache layers, which cannot hold a token tree")
    _probe_tree_attention(model, name)
    passed.add(key)


def sliding_window(model) -> int | None:
    """The smallest sliding window among the model's cache layers, or None if it has none."""
    windows = [layer.sliding_window for layer in DynamicCache(config=model.config).layers
               if type(layer).__name__ == "DynamicSlidingWindowLayer"]
    return min(windows) if windows else None


def check_sliding_window(model, tokens: int) -> None:
    """Refuse a sliding-window model only if its cache would have to hold ``tokens`` or more.

    A sliding layer keeps its last ``window - 1`` entries; during verification the cache
    holds the committed prefix plus the whole tree (up to the node budget, root and lookup
    nodes included), so ``tokens`` = prompt + new tokens - 1 + tree capacity must stay below
    the window. Within it, sliding attention sees everything and equals full attention.
    """
    window = sliding_window(model)
    if window is not None and tokens > window - 1:
        raise UnsupportedModelError(
            f"{type(model).__name__} has a sliding attention window of {window} tokens; prompt + "
            f"max_new_tokens + the largest tree need {tokens} cached tokens: use fewer new tokens, "
            "a shorter prompt or a smaller node budget (max_nodes)")


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
