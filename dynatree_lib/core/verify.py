"""Target-side verification: one forward over the whole tree.

The tree is fed after the committed prefix with an additive 4D mask (each node
sees the prefix and its own root path) and ``position_ids = prefix_len + depth``,
so every node's logits equal those of a sequential forward along its path. What the
target accepted is kept by :mod:`dynatree_lib.core.kv`, without a second forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from transformers import DynamicCache

from .processors import process_tree
from .tree import TokenTree


@dataclass(frozen=True)
class Verification:
    """What one target forward over an n-node tree says, on the tree's device.

    ``next_tokens`` [n]: the target's greedy token after every node (processed scores'
    argmax); ``scores`` [n, V] float32 processed scores, only when sampling asked for them;
    ``hidden`` [n, H] the target's last hidden states, only for a drafter that reads them.
    """

    next_tokens: Tensor
    scores: Tensor | None = None
    hidden: Tensor | None = None


def verify_tree(target, cache: DynamicCache, tree: TokenTree, prefix_len: int, *, processors=None,
                sequence: Tensor | None = None, hidden: bool = False, scores: bool = False) -> Verification:
    """Run the target once over ``tree`` after ``prefix_len`` cached tokens.

    Appends n entries to ``cache`` (node i at cache index prefix_len + i). With
    ``processors`` (from the target's generation_config), each node's logits are first
    processed as ``generate`` would after ``sequence`` [L] (committed tokens, root last)
    followed by the node's path. ``hidden`` and ``scores`` ask for the optional fields of
    the :class:`Verification`.
    """
    logits, states = tree_logits(target, cache, tree, prefix_len, hidden=True) if hidden else \
        (tree_logits(target, cache, tree, prefix_len), None)
    device = tree.tokens.device
    logits = logits.to(device)
    if processors is not None:
        logits = process_tree(processors, sequence, tree, logits)
    return Verification(next_tokens=logits.argmax(dim=-1), scores=logits.float() if scores else None,
                        hidden=states.to(device) if hidden else None)


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
