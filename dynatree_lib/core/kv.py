"""Keeping the accepted path's KV entries: an in-place gather behind the prefix, then truncation.

After verification the cache holds the prefix and every tree node; only the accepted path
survives. Moving its entries in place replaces the published implementation's crop and
re-run of the committed tokens (one target forward per iteration saved).
"""

from __future__ import annotations

from torch import Tensor
from transformers import DynamicCache


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
