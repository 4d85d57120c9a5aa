"""A token tree as tensors, in BFS order, with the masks and positions verification needs.

Node 0 is the root: the last committed token, whose successor the target has not
produced yet. Nodes are appended level by level, so node order is BFS order,
every node comes after its parent, and along any root path indices increase.

A tree may also carry a host copy of its tokens, parents and depths (``known``): the
decoding loop reads a grown tree into Python once (:meth:`TokenTree.compact`) and from
then on answers "which nodes, which tokens" without waiting for the device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from .transfer import to_device


class TokenTree:
    """Fixed-capacity buffers for one tree; ``size`` nodes are valid.

    Attributes (views of the valid part, ``n = size``):
        tokens [n] token ids; parents [n] parent index (root: -1); depths [n] (root: 0);
        logq [n] draft log-probability of the node given its parent path (root: 0);
        logp [n] cumulative draft log-probability of the path, log p(u) (root: 0);
        ancestors [n, n] bool, ancestors[i, j] is True when j is i or an ancestor of i.
    """

    def __init__(self, root_token: int, capacity: int, device: torch.device | str) -> None:
        self._allocate(capacity, device)
        self.size = 1
        self._tokens[0] = root_token
        self._ancestors[0, 0] = True

    def _allocate(self, capacity: int, device: torch.device | str) -> None:
        self.capacity = capacity
        self._tokens = torch.zeros(capacity, dtype=torch.long, device=device)
        self._parents = torch.full((capacity,), -1, dtype=torch.long, device=device)
        self._depths = torch.zeros(capacity, dtype=torch.long, device=device)
        self._logq = torch.zeros(capacity, dtype=torch.float32, device=device)
        self._logp = torch.zeros(capacity, dtype=torch.float32, device=device)
        self._ancestors = torch.zeros(capacity, capacity, dtype=torch.bool, device=device)
        self.known: KnownNodes | None = None   # host copy, when the tree was read (compact)
        self.slots: Tensor | None = None       # [n] each node's index in the tree it was compacted from

    @classmethod
    def from_parents(cls, tokens: list[int] | Tensor, parents: list[int] | Tensor,
                     device: torch.device | str | None = None) -> TokenTree:
        """Build a tree from BFS-ordered tokens and parents (``parents[0] == -1``, parents
        before children), on ``device`` (default: the device of ``tokens`` if a tensor)."""
        if device is None:
            if not isinstance(tokens, Tensor):
                raise ValueError("TokenTree.from_parents needs a device for list input, e.g. "
                                 "device=model.device")
            device = tokens.device
        tokens, parents = [int(t) for t in tokens], [int(p) for p in parents]
        if not tokens or parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents[1:], 1)):
            raise ValueError("parents must start with -1 and point to earlier nodes")
        tree = cls(tokens[0], len(tokens), device)
        for i in range(1, len(tokens)):  # one node at a time: clarity over speed (not on the hot path)
            tree.add(torch.tensor([parents[i]], device=device), torch.tensor([tokens[i]], device=device),
                     torch.zeros(1, device=device))
        tree.known = KnownNodes.of(tokens, parents)
        return tree

    def compact(self, valid: list[bool], tokens: list[int], parents: list[int], spare: int = 0) -> TokenTree:
        """The tree of the ``valid`` nodes only (host lists over this tree's nodes, as read from
        the device by the caller in one read), renumbered in order, with room for ``spare`` more
        nodes and a host copy of what it holds. A valid node's parent must be valid."""
        keep = [i for i, ok in enumerate(valid) if ok]
        renumber = {old: new for new, old in enumerate(keep)}
        known = KnownNodes.of([tokens[i] for i in keep], [-1] + [renumber[parents[i]] for i in keep[1:]])
        device = self._tokens.device
        index = to_device(keep, device)
        n = len(keep)
        tree = TokenTree.__new__(TokenTree)
        tree._allocate(n + spare, device)
        tree.size = n
        tree._tokens[:n] = self._tokens[index]
        tree._parents[:n] = to_device(known.parents, device)
        tree._depths[:n] = self._depths[index]
        tree._logq[:n] = self._logq[index]
        tree._logp[:n] = self._logp[index]
        tree._ancestors[:n, :n] = self._ancestors[index][:, index]
        tree.known, tree.slots = known, index
        return tree

    def to(self, device: torch.device | str) -> TokenTree:
        """This tree on ``device`` (itself if it is already there)."""
        moved = copy.copy(self)
        for name in ("_tokens", "_parents", "_depths", "_logq", "_logp", "_ancestors", "slots"):
            value = getattr(self, name)
            setattr(moved, name, None if value is None else value.to(device))
        moved.known = None if self.known is None else copy.deepcopy(self.known)
        return moved

    tokens = property(lambda self: self._tokens[: self.size])
    parents = property(lambda self: self._parents[: self.size])
    depths = property(lambda self: self._depths[: self.size])
    logq = property(lambda self: self._logq[: self.size])
    logp = property(lambda self: self._logp[: self.size])
    ancestors = property(lambda self: self._ancestors[: self.size, : self.size])

    @property
    def depth(self) -> int:
        """Depth of the deepest node (0 for a root-only tree)."""
        if self.known is not None:
            return max(self.known.depths)
        return int(self.depths.max())

    def read(self) -> KnownNodes:
        """The host copy of tokens, parents and depths (one read of the device if not held)."""
        if self.known is None:
            rows = torch.stack([self.tokens, self.parents, self.depths]).tolist()
            self.known = KnownNodes(*rows)
        return self.known

    def add(self, parents: Tensor, tokens: Tensor, logq: Tensor) -> Tensor:
        """Append children ``tokens[i]`` of ``parents[i]`` (existing nodes); returns their indices [k]."""
        self.known = None   # unknown on the host now (see add_known)
        k = parents.numel()
        if self.size + k > self.capacity:
            raise ValueError(f"tree capacity {self.capacity} exceeded")
        new = torch.arange(self.size, self.size + k, device=self._tokens.device)
        self._tokens[new] = tokens
        self._parents[new] = parents
        self._depths[new] = self._depths[parents] + 1
        self._logq[new] = logq.float()
        self._logp[new] = self._logp[parents] + logq.float()
        self._ancestors[new] = self._ancestors[parents]
        self._ancestors[new, new] = True
        self.size += k
        return new

    def add_known(self, parent: int, token: int) -> int:
        """Append one child that the host chose (draft log-probability 0), keeping the host copy."""
        known = self.read()
        device = self._tokens.device
        node = self.size
        self.add(to_device([parent], device), to_device([token], device), torch.zeros(1, device=device))
        known.tokens.append(token)
        known.parents.append(parent)
        known.depths.append(known.depths[parent] + 1)
        self.known = known
        return node

    def position_ids(self, prefix_len: int) -> Tensor:
        """[1, n]: a node sits at position prefix_len + depth, as on its own root path."""
        return (prefix_len + self.depths).unsqueeze(0)

    def attention_bias(self, prefix_len: int, dtype: torch.dtype) -> Tensor:
        """[1, 1, n, prefix_len + n] additive mask: every node sees the prefix and its own path."""
        n = self.size
        allowed = torch.ones(n, prefix_len + n, dtype=torch.bool, device=self._tokens.device)
        allowed[:, prefix_len:] = self.ancestors
        return additive_mask(allowed, dtype)

    def deepest_accepted(self, target_next: Tensor) -> Tensor:
        """The last node (a 0-dim tensor, on the device) of the longest root path the target
        accepts greedily.

        ``target_next[i]`` is the target's greedy token after node i. A node is accepted
        when its token equals its parent's target prediction and its parent is accepted.
        Siblings carry distinct tokens, so accepted nodes form one chain from the root.
        """
        tokens, parents = self.tokens, self.parents
        match = tokens == target_next[parents.clamp(min=0)]
        match[0] = True
        accepted = ~(self.ancestors & ~match.unsqueeze(0)).any(dim=1)
        return torch.where(accepted, self.depths, -1).argmax()

    def accepted_path(self, target_next: Tensor) -> Tensor:
        """Node indices [m + 1] of the longest accepted root path (:meth:`deepest_accepted`)."""
        return self.ancestors[self.deepest_accepted(target_next)].nonzero().flatten()

    def path_to(self, node: int) -> list[int]:
        """Node indices from the root to ``node``, from the host copy."""
        parents, path = self.read().parents, [node]
        while parents[path[-1]] >= 0:
            path.append(parents[path[-1]])
        return path[::-1]


@dataclass
class KnownNodes:
    """A tree's tokens, parents and depths as Python lists (node order)."""

    tokens: list[int]
    parents: list[int]
    depths: list[int]

    @classmethod
    def of(cls, tokens: list[int], parents: list[int]) -> KnownNodes:
        """Depths from BFS-ordered parents (each parent before its children)."""
        depths: list[int] = []
        for parent in parents:
            depths.append(0 if parent < 0 else depths[parent] + 1)
        return cls(tokens, parents, depths)


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean [q, k] visibility to the [1, 1, q, k] additive float mask HF attention adds to scores.

    A float mask works with both the eager and the SDPA attention implementations.
    """
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    bias.masked_fill_(~allowed, torch.finfo(dtype).min)
    return bias[None, None]
