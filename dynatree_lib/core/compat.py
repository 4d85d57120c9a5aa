"""Model probes: can this model verify a token tree exactly, and how large are its logits?
And the torch this library is tested with.

Checked once per model (and dtype, attention implementation, device type) before any
decoding, so an unsupported model fails with a clear message instead of a wrong token.
"""

from __future__ import annotations

import inspect
import os
import re

import torch
from transformers import DynamicCache

from .tree import TokenTree
from .verify import tree_logits

# The torch releases CI and the GPU check test (pyproject.toml: torch>=2.11,<2.14), [low, high).
SUPPORTED_TORCH = ((2, 11), (2, 14))


def check_torch_version(version: str | None = None) -> None:
    """Raise ImportError when torch ``version`` (default: the installed one) lies outside
    :data:`SUPPORTED_TORCH`: the cache and attention APIs tree verification relies on change
    between releases. ``DYNATREE_ANY_TORCH=1`` skips the check (untested territory)."""
    version = torch.__version__ if version is None else version
    if os.environ.get("DYNATREE_ANY_TORCH") == "1":
        return
    match = re.match(r"(\d+)\.(\d+)", version)
    (low, high) = SUPPORTED_TORCH
    if match is None or not low <= (int(match[1]), int(match[2])) < high:
        raise ImportError(
            f"dynatree_lib is tested with torch {low[0]}.{low[1]} to {high[0]}.{high[1] - 1}, but torch "
            f"{version} is installed: install one of those (pip install 'torch>={low[0]}.{low[1]},"
            f"<{high[0]}.{high[1]}'), or set DYNATREE_ANY_TORCH=1 to try this one anyway")


class UnsupportedModelError(ValueError):
    """The model cannot verify a token tree exactly (no 4D mask or no ``position_ids``)."""


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
