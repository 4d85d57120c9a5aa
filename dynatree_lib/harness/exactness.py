"""Checks of the exactness guarantee, usable by tests, the book and users.

* :func:`tree_logits_error`: per-node difference between tree verification and a
  sequential forward along the node's path (zero up to float rounding when
  positions are depths; large when they are BFS indices, as in the published code);
  :func:`tree_token_verdicts`: the same comparison as a verdict on each node's greedy token.
* :func:`compare_with_autoregressive`: runs a method and plain greedy decoding and
  gives a verdict: ``identical``; ``near-tie`` when they first part where both tokens'
  logits are closer to the target's best logit than rounding can tell apart; else ``mismatch``.

Why near-ties exist: in float32 a tree forward and a one-token forward give the same
logits to ~1e-6 and outputs are identical. In float16/bfloat16 they round differently,
and rounding error grows with the value rounded (a bfloat16 number carries 8 bits of
mantissa: logits near 20 are stored in steps of 0.125). So the bound is relative:
``NEAR_TIE_EPS * eps(dtype) * max(|top-1 logit|, 1)``, and both tokens (the reference's and
the method's) must lie within it of the top-1 logit of a forward that judges them: with two
candidates, they are its first and second choices, closer than the bound; with several
(bfloat16 on a CPU met three tokens within 0.125 of each other, the method's token third),
each is one that rounding could have put first. Anything else is a bug.
On the embedded pair a tree forward's logits differed from sequential ones by up to
3.6 (bfloat16) and 4.3 (float16) times eps * |top-1 logit|; a flip needs the *difference*
of two such logits to move by the margin, hence NEAR_TIE_EPS = 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import DynamicCache

from ..core.decode import generate
from ..core.methods import Autoregressive, Method
from ..core.tree import TokenTree
from ..core.verify import tree_logits

NEAR_TIE_EPS = 8  # margin bound in units of the dtype's epsilon times the top-1 logit's magnitude
VERDICTS = ("identical", "near-tie", "mismatch")


def near_tie_bound(top1: float, dtype: torch.dtype) -> float:
    """Largest gap below the top-1 logit that rounding in ``dtype`` can close (see module doc)."""
    return NEAR_TIE_EPS * torch.finfo(dtype).eps * max(abs(top1), 1.0)


@dataclass
class Divergence:
    """Where a method's tokens first differ from greedy AR, and whether that is a near-tie."""

    verdict: str                   # near-tie | mismatch
    index: int                     # first differing new token
    reference_token: int | None
    method_token: int | None
    margin: float | None           # top-1 logit minus the lower of the two tokens' (None: lengths differ)
    bound: float | None            # near_tie_bound at that position

    def as_record(self) -> dict:
        return {"verdict": self.verdict, "first_divergence": self.index, "margin": self.margin,
                "margin_bound": self.bound}


@torch.inference_mode()
def classify_divergence(target, input_ids: Tensor, reference: list[int],
                        tokens: list[int]) -> Divergence | None:
    """None if ``tokens == reference``; else the first divergence with its verdict.

    Recomputes the target's logits after the prompt and the shared tokens (one forward,
    in the target's dtype); a shorter output that agrees as far as it goes (an EOS or a
    length mismatch) is a ``mismatch``.
    """
    if tokens == reference:
        return None
    i = next((j for j, (a, b) in enumerate(zip(reference, tokens, strict=False)) if a != b),
             min(len(reference), len(tokens)))
    ref_token = reference[i] if i < len(reference) else None
    got = tokens[i] if i < len(tokens) else None
    if ref_token is None or got is None:
        return Divergence("mismatch", i, ref_token, got, None, None)
    device = target.device
    shared = torch.tensor(reference[:i], dtype=torch.long, device=device)
    context = torch.cat([input_ids[0].to(device), shared])
    logits = target(context.unsqueeze(0)).logits[0, -1].float()
    top = float(logits.max())
    # The full forward may itself order the tokens differently from the cached AR steps: what
    # counts is that each of the two is within rounding of its best logit (with two candidates:
    # they are its top two and their margin is at most the bound).
    margin = top - min(float(logits[ref_token]), float(logits[got]))
    bound = near_tie_bound(top, target.dtype)
    return Divergence("near-tie" if margin <= bound else "mismatch", i, ref_token, got, margin, bound)


def verdict(target, input_ids: Tensor, reference: list[int], tokens: list[int]) -> str:
    """``identical``, ``near-tie`` or ``mismatch``: ``tokens`` against ``reference`` (greedy
    decoding's tokens after ``input_ids`` [1, L]), as :func:`classify_divergence` judges them.
    What the chapters print, so a half-precision run reads honestly (a near-tie is not a bug)."""
    divergence = classify_divergence(target, input_ids, reference, tokens)
    return "identical" if divergence is None else divergence.verdict


def worst_verdict(verdicts) -> str:
    """The worst of several verdicts: any mismatch, else any near-tie, else identical."""
    verdicts = set(verdicts)
    return next((v for v in ("mismatch", "near-tie") if v in verdicts), "identical")


@torch.inference_mode()
def _tree_and_sequential_logits(target, prefix_ids: Tensor, tree: TokenTree,
                                depth_positions: bool) -> tuple[Tensor, Tensor]:
    """[n, V] float32 logits of every node from one tree forward, and from a sequential
    forward along each node's path."""
    prefix_ids = prefix_ids.to(target.device)
    tree = tree.to(target.device)
    prefix_len = prefix_ids.shape[1]
    cache = DynamicCache(config=target.config)
    target(prefix_ids, past_key_values=cache, use_cache=True)
    positions = None if depth_positions else (
        prefix_len + torch.arange(tree.size, device=target.device)).unsqueeze(0)
    got = tree_logits(target, cache, tree, prefix_len, position_ids=positions).float()
    want = []
    for node in range(tree.size):
        path = tree.tokens[tree.ancestors[node]]
        sequence = torch.cat([prefix_ids[0], path]).unsqueeze(0)
        want.append(target(sequence).logits[0, -1].float())
    return got, torch.stack(want)


def tree_logits_error(target, prefix_ids: Tensor, tree: TokenTree, *,
                      depth_positions: bool = True) -> Tensor:
    """[n] max ``|logit difference|`` at each tree node, tree verification vs sequential forward.

    ``prefix_ids`` [1, P] are the committed tokens before the root. With
    ``depth_positions=False`` nodes get positions P + BFS index (the published bug).
    """
    got, want = _tree_and_sequential_logits(target, prefix_ids, tree, depth_positions)
    return (got - want).abs().max(dim=-1).values.cpu()


def tree_token_verdicts(target, prefix_ids: Tensor, tree: TokenTree, *,
                        depth_positions: bool = True) -> list[str]:
    """Per tree node, does verification pick the sequential forward's greedy token?

    ``identical`` when it does; ``near-tie`` when it picks another token within rounding of the
    sequential forward's best logit (:func:`near_tie_bound` in the target's dtype); else
    ``mismatch``. Unlike a threshold on :func:`tree_logits_error`, the verdicts do not depend
    on which kernel a CPU library picked, only on whether the positions are right.
    """
    got, want = _tree_and_sequential_logits(target, prefix_ids, tree, depth_positions)
    verdicts = []
    for tree_row, sequential in zip(got, want, strict=True):
        chosen, best = int(tree_row.argmax()), float(sequential.max())
        if chosen == int(sequential.argmax()):
            verdicts.append("identical")
        else:
            margin = best - float(sequential[chosen])
            verdicts.append("near-tie" if margin <= near_tie_bound(best, target.dtype) else "mismatch")
    return verdicts


@dataclass
class ExactnessReport:
    """Outcome of :func:`compare_with_autoregressive`."""

    verdict: str                   # identical | near-tie | mismatch
    compared: int
    divergence: Divergence | None = None

    @property
    def identical(self) -> bool:
        return self.verdict == "identical"

    def __str__(self) -> str:
        if self.divergence is None:
            return f"identical to greedy autoregressive decoding ({self.compared} tokens)"
        d = self.divergence
        where = (f"diverges at new token {d.index}: greedy {d.reference_token}, method {d.method_token}")
        if d.margin is None:
            return f"{self.verdict}: {where} (the outputs have different lengths)"
        return (f"{self.verdict}: {where}; margin there (top-1 logit minus the lower of the two "
                f"tokens') {d.margin:.4g} (near-tie bound {d.bound:.3g})")


@torch.inference_mode()
def compare_with_autoregressive(target, draft, input_ids: Tensor, method: Method,
                                max_new_tokens: int = 64, eos_token_id=None) -> ExactnessReport:
    """Run ``method`` and greedy AR decoding in the models' own dtype and give the verdict."""
    reference = generate(target, None, input_ids, Autoregressive(), max_new_tokens,
                         eos_token_id).new_tokens
    tokens = generate(target, draft, input_ids, method, max_new_tokens, eos_token_id).new_tokens
    divergence = classify_divergence(target, input_ids, reference, tokens)
    compared = min(len(reference), len(tokens))
    if divergence is None:
        return ExactnessReport("identical", compared)
    return ExactnessReport(divergence.verdict, compared, divergence)
