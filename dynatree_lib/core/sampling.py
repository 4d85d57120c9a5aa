"""Lossless speculative sampling: the target's sampling distribution, drafts sampled without
replacement, and recursive rejection sampling down the tree.

With ``do_sample=True`` every method samples from exactly the distribution Hugging Face
``generate(do_sample=True)`` samples from: the target's logits in float32, its
generation_config's processors (:mod:`dynatree_lib.core.processors`, repetition penalty
included), then the warpers in ``generate``'s order (temperature, top-k, top-p, min-p),
then a softmax. Autoregressive decoding draws from it; the speculative methods reach the
same distribution by rejection sampling:

* **Drafting.** At every expanded node u the draft's warped distribution q(. | u) gives
  B(u) children drawn *without replacement* (Gumbel top-k: the order of the perturbed
  scores is the order of sequential draws). Breadth still reads the draft's confidence
  c(u) = max q(. | u); depth and pruning read p(u), the product of q along the drawn path.
  Pruning and the node budget decide which drawn children become tree nodes; a pruned
  child stays a *proposal* (a stub): it can still be accepted, it just cannot be continued.
* **Looked-up tokens** (context lookup, an extension) are point-mass proposals: at a node
  where lookup proposes token x, x is tried first with q = 1 at x, accepted with
  probability r(x), and on rejection the residual becomes r with x removed.
* **Verification** is one target forward over the tree, as in greedy decoding, giving the
  target's distribution p(. | u) at every node.
* **Acceptance** (recursive rejection sampling; Jeon et al. 2024, the without-replacement
  form of SpecInfer's multi-step rule): at node u, with residual r = p(. | u), try the
  children in the order they were drawn. Child i was drawn from q_i, q with the earlier
  siblings removed and renormalised. Accept it with probability min(1, r(c_i) / q_i(c_i));
  on rejection set r = norm(max(0, r - q_i)) and try the next. An accepted tree node
  becomes u; an accepted stub is committed and ends the iteration. When every child is
  rejected (or u has none), one token is drawn from r and ends the iteration: the residual
  sample, or the bonus token when u had no children.

Each step is the standard speculative sampling step (Leviathan et al.; Chen et al.) with
proposal q_i, so every committed token has the target's distribution given the tokens
before it; with one child per node (Linear) it *is* the standard rule. Nothing about
the tree's shape depends on the target, so DynaTree's rules stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .processors import UnsupportedGenerationConfigError

# Warpers of generate(do_sample=True) this module does not reproduce: refused by name when set.
UNSUPPORTED_WARPERS = {"typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "top_h": None}


@dataclass
class Sampler:
    """The sampling settings of one ``generate`` call and its random number generator.

    ``generator`` None uses torch's global generator (as ``generate`` does): with the same
    ``torch.manual_seed`` our autoregressive sampling then draws the same tokens as HF's.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float | None = None
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        from transformers import generation as g

        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0: off), got {self.top_k!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p!r}")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must lie in [0, 1], got {self.min_p!r}")
        warpers = []  # the order of GenerationMixin._get_logits_processor (transformers 5.x)
        if self.temperature != 1.0:
            warpers.append(g.TemperatureLogitsWarper(float(self.temperature)))
        if self.top_k:
            warpers.append(g.TopKLogitsWarper(top_k=self.top_k, min_tokens_to_keep=1))
        if self.top_p < 1.0:
            warpers.append(g.TopPLogitsWarper(top_p=float(self.top_p), min_tokens_to_keep=1))
        if self.min_p is not None:
            warpers.append(g.MinPLogitsWarper(min_p=float(self.min_p), min_tokens_to_keep=1))
        self._warpers = g.LogitsProcessorList(warpers)

    def warp(self, scores: Tensor) -> Tensor:
        """[n, V] processed float32 scores -> [n, V] warped scores (the warpers read no ids)."""
        if not self._warpers:
            return scores
        return self._warpers(torch.empty(scores.shape[0], 0, dtype=torch.long, device=scores.device), scores)

    def probs(self, scores: Tensor) -> Tensor:
        """[n, V] the distribution sampled from: softmax of the warped scores."""
        return torch.softmax(self.warp(scores.float()), dim=-1)

    def _on_generator(self, tensor: Tensor) -> Tensor:
        """A generator draws on its own device (a CPU generator with a CUDA model)."""
        return tensor if self.generator is None else tensor.to(self.generator.device)

    def draw(self, probs: Tensor) -> int:
        """One token from ``probs`` [V], as ``generate`` draws it."""
        probs = self._on_generator(probs)
        return int(torch.multinomial(probs.unsqueeze(0), num_samples=1, generator=self.generator)[0, 0])

    def uniform(self, device) -> float:
        device = device if self.generator is None else self.generator.device
        return float(torch.rand((), generator=self.generator, device=device))

    def draw_without_replacement(self, probs: Tensor, k: int) -> Tensor:
        """[F, k] tokens per row of ``probs`` [F, V], drawn in order without replacement
        (Gumbel top-k); columns beyond a row's nonzero entries are meaningless."""
        noise = torch.empty_like(self._on_generator(probs)).exponential_(generator=self.generator)
        return (probs.log() - noise.to(probs.device).log()).topk(k, dim=-1).indices


def resolve_sampler(target, do_sample: bool | None, temperature, top_k, top_p,
                    generator: torch.Generator | None) -> Sampler | None:
    """The :class:`Sampler` of a ``generate`` call, or None for greedy decoding.

    As HF ``generate`` does, settings left as None come from ``target.generation_config``
    (its defaults: temperature 1, top_k 50, top_p 1); ``do_sample=None`` reads do_sample
    from there too, while the default ``do_sample=False`` keeps the output greedy.
    """
    config = getattr(target, "generation_config", None)
    if do_sample is None:
        do_sample = bool(getattr(config, "do_sample", False))
    if not do_sample:
        given = [name for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p))
                 if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply when sampling: pass do_sample=True")
        return None
    if config is not None:
        for name, neutral in UNSUPPORTED_WARPERS.items():
            value = getattr(config, name, None)
            if value is not None and value != neutral:
                raise UnsupportedGenerationConfigError(
                    f"the target's generation_config sets {name}={value!r}: speculative sampling here "
                    "reproduces temperature, top_k, top_p and min_p only; reset it or use HF generate")

    def setting(value, name, default):
        if value is not None:
            return value
        found = getattr(config, name, None) if config is not None else None
        return default if found is None else found

    return Sampler(temperature=setting(temperature, "temperature", 1.0), top_k=setting(top_k, "top_k", 0),
                   top_p=setting(top_p, "top_p", 1.0), min_p=getattr(config, "min_p", None),
                   generator=generator)


@dataclass
class Proposals:
    """The children drawn at one expanded node: the draft's warped distribution there and the
    tokens in the order drawn (tree nodes and stubs alike)."""

    q: Tensor       # [V_draft] warped draft probabilities at the node
    tokens: Tensor  # [B(u)] drawn tokens, draw order


@dataclass
class SampledPath:
    """The outcome of one acceptance walk."""

    path: list[int]       # tree node indices, root first: the accepted tree nodes
    tokens: list[int]     # committed tokens: the accepted drafts, then the final one
    drafted: int          # how many of ``tokens`` are accepted draft tokens (stubs included)


def sample_walk(tree, proposals: dict[int, Proposals], target_scores: Tensor,
                sampler: Sampler, points: dict[int, int] | None = None) -> SampledPath:
    """Recursive rejection sampling from the root (module docstring).

    ``target_scores`` [n, V] are the target's processed float32 scores after every tree node;
    the sampling distribution is computed only at the nodes the walk visits. ``points`` maps a
    node to a token proposed there with certainty (context lookup, ``sources.py``): tried
    first, as a point mass q = 1 at that token, so it is accepted with probability r(token)
    and, if rejected, removed from the residual before the drafted children are tried.
    """
    known = tree.read()   # the host copy of a compacted tree: no read
    parents, tokens = known.parents, known.tokens
    children: dict[int, dict[int, int]] = {}
    for node in range(1, len(parents)):
        children.setdefault(parents[node], {})[tokens[node]] = node
    device = target_scores.device
    node, path, out = 0, [0], []
    while True:
        residual = sampler.probs(target_scores[node].unsqueeze(0))[0]
        accepted = None
        point = None if points is None else points.get(node)
        if point is not None:
            if sampler.uniform(device) < residual[point]:   # u < min(1, r(x) / 1)
                accepted = point
            else:   # r(x) <= u < 1: the rest of r has mass
                residual = residual.clone()
                residual[point] = 0
                residual = residual / residual.sum()
        drawn = proposals.get(node)
        if drawn is not None and accepted is None:
            q = torch.zeros_like(residual)
            q[: drawn.q.numel()] = drawn.q.to(device).float()
            for token in drawn.tokens.tolist():
                q_i = q / q.sum()
                if sampler.uniform(device) * q_i[token] < residual[token]:  # u < min(1, r/q_i)
                    accepted = token
                    break
                rest = (residual - q_i).clamp(min=0)
                if rest.sum() > 0:  # zero only when r == q_i up to rounding: nothing to correct
                    residual = rest / rest.sum()
                q[token] = 0
        if accepted is None:
            out.append(sampler.draw(residual))
            return SampledPath(path, out, len(out) - 1)
        out.append(accepted)
        child = children.get(node, {}).get(accepted)
        if child is None:  # an accepted stub: committed, but the tree does not go on from it
            return SampledPath(path, out, len(out))
        node = child
        path.append(child)
