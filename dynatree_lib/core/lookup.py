"""Context lookup: candidates copied from earlier text, grafted onto the draft's tree.

Text often repeats itself (names, phrases, the prompt's own words), and a small draft
model is bad at copying. Prompt-lookup decoding exploits this without any model: find
the latest earlier occurrence of the last n committed tokens and propose what followed
it. ``DynaTree(lookup=L)`` adds that continuation, up to L tokens, as one extra chain
under the root, merged with the draft's nodes where they carry the same tokens, so a
single target forward verifies both sources. This is an extension of this library,
not part of the DynaTree paper (``lookup=0``, the default, is the paper's method).
Exactness is unaffected: verification accepts only the target's own greedy tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .tree import TokenTree


def find_continuation(sequence: Tensor, max_tokens: int, max_ngram: int = 3) -> Tensor:
    """Up to ``max_tokens`` ids that followed the latest earlier occurrence of the longest
    suffix (``max_ngram`` down to 1 tokens) of ``sequence`` [L]; empty when nothing matches."""
    length = sequence.numel()
    for n in range(min(max_ngram, length - 1), 0, -1):
        windows = sequence[:-1].unfold(0, n, 1)          # [L - n, n], every earlier n-gram
        hits = (windows == sequence[-n:]).all(dim=1).nonzero().flatten()
        if hits.numel():
            start = int(hits[-1]) + n                    # the latest occurrence wins
            return sequence[start:start + max_tokens]
    return sequence[:0]


def graft_chain(tree: TokenTree, tokens: Tensor) -> int:
    """Attach ``tokens`` as a root path of ``tree``, reusing existing nodes; returns nodes added.

    Grafted nodes get draft log-probability 0 (they do not come from the draft). Siblings
    keep distinct tokens, as :meth:`TokenTree.accepted_path` requires.
    """
    node, added = 0, 0
    device = tree.tokens.device
    for token in tokens.tolist():
        if added == 0:  # still inside the existing tree: follow a matching child if there is one
            child = ((tree.parents == node) & (tree.tokens == token)).nonzero().flatten()
            if child.numel():
                node = int(child[0])
                continue
        node = int(tree.add(torch.tensor([node], device=device), torch.tensor([token], device=device),
                            torch.zeros(1, device=device))[0])
        added += 1
    return added
