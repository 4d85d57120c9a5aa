"""What tree growth needs from a draft: the :class:`Drafter` protocol, and the causal-LM draft
behind it.

A drafter proposes; the target decides. The decoding loop uses the members of
:class:`Drafter` and nothing else (``tests/test_contract.py`` runs every method through a
drafter that has only these):

* before any forward: ``vocab_size()``, ``device``, ``validate(target, tokens)`` (can it draft
  for this target and this many tokens?) and ``check_cache(tokens)`` (can its cache hold them?);
* per generation: ``reset()``; a drafter with ``needs_hidden = True`` (the feature head) is then
  given the target's last hidden states of the prompt, ``observe(hidden)`` [L, H], from the
  prefill the target runs anyway;
* per iteration: ``begin(sequence, prefix_len)`` -> [V] logits for the root's children.
  ``sequence`` holds every committed token, the root (the last committed token, at position
  ``prefix_len``) last; the drafter catches up on the tokens it has not seen yet;
  ``expand(tree, frontier, prefix_len, depth)`` -> [F, V] logits for the children of each
  frontier node (all nodes of one level, batched under the tree mask: siblings never see
  each other), possibly several times (``frontier`` may hold closed rows, padding a level
  to a shape fixed in advance: their logits are ignored); ``accept(tree, path, prefix_len,
  hidden)`` after verification keeps what the target accepted (``tree`` the compacted tree,
  ``path`` its accepted nodes as a list, root first; ``hidden`` [n, H] the target's states at
  the tree's nodes for a drafter that reads them, else None);
* ``forwards`` counts its forward passes; ``name`` says what it is (results files record it).

Two implementations: :class:`ModelDrafter` (any Hugging Face causal LM: the paper's setting)
and :class:`dynatree_lib.models.feature_head.FeatureDrafter` (a one-layer head that reads the
target's hidden states). :func:`as_drafter` wraps a model.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor
from transformers import DynamicCache

from .compat import check_sliding_window, check_tree_attention, vocab_size
from .kv import keep_cache_entries
from .transfer import to_device
from .tree import TokenTree, additive_mask


class Drafter(Protocol):
    """Everything the decoding loop asks of a draft (module docstring: when each is called)."""

    needs_hidden: bool
    forwards: int

    @property
    def name(self) -> str: ...
    @property
    def device(self) -> torch.device: ...
    def vocab_size(self) -> int: ...
    def validate(self, target, tokens: int) -> None: ...
    def check_cache(self, tokens: int) -> None: ...
    def reset(self) -> None: ...
    def observe(self, hidden: Tensor) -> None: ...
    def begin(self, sequence: Tensor, prefix_len: int) -> Tensor: ...
    def expand(self, tree: TokenTree, frontier: Tensor, prefix_len: int, depth: int) -> Tensor: ...
    def accept(self, tree: TokenTree, path: list[int], prefix_len: int, hidden: Tensor | None) -> None: ...


DRAFTER_MEMBERS = ("needs_hidden", "forwards", "name", "device", "vocab_size", "validate", "check_cache",
                   "reset", "observe", "begin", "expand", "accept")


class ModelDrafter:
    """A Hugging Face causal LM as the draft, with its own KV cache kept across iterations.

    ``begin`` feeds the committed tokens missing from the cache (root last); ``expand``
    feeds a level at positions ``prefix_len + depth`` under the tree mask; ``accept`` keeps
    the cache entries of the accepted nodes that have an accepted draft child (those were
    surely fed); the deepest accepted draft node is fed again next time, with the bonus
    token, so that no host read decides whether it was. Ids the draft cannot embed (a padded
    target vocabulary) are shown to it as id 0: its guesses there are poor, verification
    stays exact.
    """

    needs_hidden = False

    def __init__(self, model) -> None:
        self.model = model
        self.forwards = 0
        self.cache: DynamicCache | None = None
        self._fed: list[Tensor] = []       # non-root nodes in draft-cache order
        self._rank: Tensor | None = None    # cache offset of each fed node after the root's slot

    config = property(lambda self: self.model.config)
    device = property(lambda self: self.model.device)
    dtype = property(lambda self: self.model.dtype)
    name = property(lambda self: getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__)

    def vocab_size(self) -> int:
        return vocab_size(self.model)

    def validate(self, target, tokens: int) -> None:
        """Checks before any forward: the tree mask works, the context fits."""
        window = getattr(self.model.config, "max_position_embeddings", None)
        if window is not None and tokens > window:
            raise ValueError(f"prompt + max_new_tokens exceeds the draft's context window of {window}")
        check_tree_attention(self.model)

    def check_cache(self, tokens: int) -> None:
        check_sliding_window(self.model, tokens)

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.model.config)
        self.forwards = 0
        self._rank = None

    def observe(self, hidden: Tensor) -> None:  # the causal LM needs no target states
        pass

    def begin(self, sequence: Tensor, prefix_len: int) -> Tensor:
        pending = sequence[self.cache.get_seq_length():]
        pending = pending.masked_fill(pending >= self.model.get_input_embeddings().num_embeddings, 0)
        start = prefix_len + 1 - pending.numel()
        positions = torch.arange(start, prefix_len + 1, device=pending.device).unsqueeze(0)
        logits = self.model(pending.unsqueeze(0), past_key_values=self.cache, position_ids=positions,
                            use_cache=True, logits_to_keep=1).logits[0, -1]
        self.forwards += 1
        self._fed = []
        self._rank = None
        return logits

    def expand(self, tree: TokenTree, frontier: Tensor, prefix_len: int, depth: int) -> Tensor:
        device = frontier.device
        if self._rank is None:
            self._rank = torch.full((tree.capacity,), -1, dtype=torch.long, device=device)
        self._fed.append(frontier)
        order = torch.cat(self._fed)
        self._rank[frontier] = torch.arange(order.numel() - frontier.numel(), order.numel(), device=device)
        allowed = torch.ones(frontier.numel(), prefix_len + 1 + order.numel(), dtype=torch.bool,
                             device=device)
        allowed[:, prefix_len + 1:] = tree._ancestors[frontier][:, order]
        positions = torch.full((1, frontier.numel()), prefix_len + depth, device=device)
        logits = self.model(tree._tokens[frontier].unsqueeze(0), past_key_values=self.cache,
                            position_ids=positions, attention_mask=additive_mask(allowed, self.model.dtype),
                            use_cache=True).logits[0]
        self.forwards += 1
        return logits

    def accept(self, tree: TokenTree, path: list[int], prefix_len: int,
               hidden: Tensor | None = None) -> None:
        if self.cache is None or self.cache.get_seq_length() <= prefix_len:
            return  # nothing fed this iteration (a depth-0 tree): the cache holds committed text only
        drafted = tree.size if tree.slots is None else tree.slots.numel()   # grafted nodes come after
        parents = [node for node in path[1:] if node < drafted][:-1]        # each has a drafted child
        if self._rank is None or not parents:
            nothing = torch.zeros(0, dtype=torch.long, device=self.device)
            keep_cache_entries(self.cache, prefix_len + 1, nothing)
            return
        nodes = to_device(parents, self._rank.device)
        slots = nodes if tree.slots is None else tree.slots[nodes]
        keep_cache_entries(self.cache, prefix_len + 1, self._rank[slots])


def as_drafter(draft) -> Drafter | None:
    """A drafter for ``draft``: itself if it already is one, a :class:`ModelDrafter` for a model."""
    if draft is None or hasattr(draft, "begin"):
        return draft
    return ModelDrafter(draft)
