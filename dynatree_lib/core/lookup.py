"""Context lookup: candidates copied from earlier text, grafted onto the draft's tree.

Text often repeats itself (names, phrases, the prompt's own words), and a small draft
model is bad at copying. Prompt-lookup decoding exploits this without any model: find
the latest earlier occurrence of the last n committed tokens and propose what followed
it. ``DynaTree(lookup=m)`` adds that continuation, up to m tokens, as one extra chain
under the root, merged with the draft's nodes where they carry the same tokens, so a
single target forward verifies both sources; how much of it enters is decided by its
calibrated confidence (``sources.py``). This is an extension of this library, not part of
the DynaTree paper (``DynaTree(lookup=0)`` is the paper's method).
Exactness is unaffected: verification accepts only the target's own greedy tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .tree import TokenTree


def find_match(sequence: Sequence[int] | Tensor, max_tokens: int,
               max_ngram: int = 3) -> tuple[list[int], int]:
    """Up to ``max_tokens`` ids that followed the latest earlier occurrence of the longest
    suffix (``max_ngram`` down to 1 tokens) of ``sequence`` [L], and that suffix's length;
    ([], 0) when nothing matches.

    A list is searched on the host (what the decoding loop passes: no read of the device)."""
    tokens = sequence.tolist() if isinstance(sequence, Tensor) else list(sequence)
    length = len(tokens)
    for n in range(min(max_ngram, length - 1), 0, -1):
        suffix = tokens[-n:]
        for start in range(length - n - 1, -1, -1):     # the latest occurrence wins
            if tokens[start:start + n] == suffix:
                return tokens[start + n:start + n + max_tokens], n
    return [], 0


def find_continuation(sequence: Sequence[int] | Tensor, max_tokens: int, max_ngram: int = 3) -> list[int]:
    """The continuation of :func:`find_match` alone."""
    return find_match(sequence, max_tokens, max_ngram)[0]


def graft_chain(tree: TokenTree, tokens: Sequence[int] | Tensor) -> list[int]:
    """Attach ``tokens`` as a root path of ``tree``, reusing existing nodes; returns the chain's
    nodes in order (the reused ones included; new ones are numbered from the old size on).

    Grafted nodes get draft log-probability 0 (they do not come from the draft). Siblings
    keep distinct tokens, as :meth:`TokenTree.accepted_path` requires. Works on the tree's
    host copy (:meth:`TokenTree.read`).
    """
    tokens = tokens.tolist() if isinstance(tokens, Tensor) else list(tokens)
    known = tree.read()
    node, nodes, inside = 0, [], True
    for token in tokens:
        if inside:  # still inside the existing tree: follow a matching child if there is one
            child = next((i for i, (p, t) in enumerate(zip(known.parents, known.tokens, strict=True))
                          if p == node and t == token), None)
            inside = child is not None
        node = child if inside else tree.add_known(node, token)
        nodes.append(node)
    return nodes
