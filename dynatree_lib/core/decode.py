"""The decoding loop: prefill, then draft -> verify -> accept -> keep KV -> adapt.

Greedy and exact: every committed token is the target's argmax after the tokens
before it, so ``new_tokens`` equals the target's own greedy ``generate``. The loop
reads like Algorithm 1 of the paper: :func:`_iteration` is one round. What a round
carries to the next lives in a :class:`DecodeState`; the drafting side (drafter,
method, controller, acceptance strategy) in a :class:`Speculator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from transformers import DynamicCache

from .accept import Accepted, GreedyAcceptance, SampledAcceptance, acceptance
from .compat import check_sliding_window, check_tree_attention, vocab_size
from .controller import HistoryController, bound_shares
from .drafter import Drafter, as_drafter
from .growth import DraftedTree, MethodEntry, draft_tree, growth_rule, method_entry, next_levels
from .kv import keep_cache_entries
from .lookup import graft_chain
from .methods import Method, default_method
from .processors import build_processors, process_next
from .results import GenerationResult, GenerationStats, IterationTrace
from .sampling import Sampler, resolve_sampler
from .sources import Chain, LookupSource, accepted_on_chain
from .timing import Stopwatch
from .transfer import to_device
from .verify import verify_tree

__all__ = ["generate", "GenerationResult", "GenerationStats", "IterationTrace", "DecodeState", "Speculator"]


@dataclass
class DecodeState:
    """What one generation carries from one target forward to the next."""

    target: torch.nn.Module
    cache: DynamicCache
    sequence: Tensor                  # [L] every committed token; the last is the next tree's root
    prefix_len: int                   # tokens in the target's cache; the root sits at this position
    eos: set[int]
    limit: int                        # max_new_tokens
    clock: Stopwatch
    report: Callable[[int], None]
    processors: object | None = None  # the target's generation_config processors (processors.py)
    sampler: Sampler | None = None
    out: list[int] = field(default_factory=list)
    prompt: list[int] | None = None   # the prompt on the host, where context lookup searches it
    stats: GenerationStats = field(default_factory=GenerationStats)
    traces: list[IterationTrace] | None = None

    def finished(self) -> bool:
        return len(self.out) >= self.limit or (bool(self.out) and self.out[-1] in self.eos)

    def commit(self, tokens: list[int]) -> int:
        """Append tokens up to the limit or the first EOS (kept, as HF does); returns how many."""
        for count, token in enumerate(tokens, 1):
            self.out.append(token)
            if token in self.eos or len(self.out) >= self.limit:
                return count
        return len(tokens)


@dataclass
class Speculator:
    """The drafting side of a speculative generation."""

    drafter: Drafter
    method: Method
    entry: MethodEntry
    vocab: int                        # draft logits beyond it are ignored
    accept: GreedyAcceptance | SampledAcceptance
    controller: HistoryController | None = None
    levels: int | None = None         # levels the next tree grows (growth.next_levels); None: the rule's
    lookup: LookupSource | None = None   # context lookup as a second source of candidates


def _eos_ids(target, eos_token_id: int | list[int] | None) -> set[int]:
    if eos_token_id is None:  # as HF generate: fall back to the model's generation config
        config = getattr(target, "generation_config", None)
        eos_token_id = getattr(config, "eos_token_id", None)
    if eos_token_id is None:
        return set()
    return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(t) for t in eos_token_id}


def _check_input(target, input_ids, max_new_tokens) -> int:
    """Check the prompt and the length against the target; returns its vocabulary size."""
    if not isinstance(input_ids, Tensor) or input_ids.dtype != torch.long or input_ids.dim() != 2:
        raise ValueError("input_ids must be a [1, L] LongTensor")
    if input_ids.shape[0] != 1:
        raise ValueError(f"batch size {input_ids.shape[0]} is not supported: pass one prompt, shape [1, L]")
    if input_ids.shape[1] == 0:
        raise ValueError("the prompt is empty: input_ids needs at least one token")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    vocab = vocab_size(target)
    if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab:
        raise ValueError(f"input_ids hold token ids outside the target vocabulary [0, {vocab})")
    window = getattr(target.config, "max_position_embeddings", None)
    if window is not None and input_ids.shape[1] + max_new_tokens > window:
        raise ValueError(f"prompt ({input_ids.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds "
                         f"the target's context window of {window} tokens")
    return vocab


def _check_drafter(target, drafter, method, entry: MethodEntry, length: int, vocab: int,
                   allow_vocab_padding: bool, probe: bool = True) -> int:
    """Check the drafter against the target before any forward; returns the vocabulary drafts use.
    ``probe``: also probe the target's tree attention (one small forward; not for zero tokens)."""
    if drafter is None:
        raise ValueError(f"{type(method).__name__} needs a draft model")
    draft_vocab = drafter.vocab_size()
    if draft_vocab != vocab:
        if not allow_vocab_padding:
            raise ValueError(
                f"target and draft vocabularies differ ({vocab} vs {draft_vocab} logits); if both use "
                "the same tokenizer and only the embedding matrices are padded, "
                "pass allow_vocab_padding=True")
        vocab = min(vocab, draft_vocab)
    if drafter.device != target.device:
        raise ValueError(f"put the draft on the target's first device (target: {target.device}, "
                         f"draft: {drafter.device})")
    drafter.validate(target, length)
    if probe:
        check_tree_attention(target)
    cached = length - 1 + entry.capacity(method)
    check_sliding_window(target, cached)
    drafter.check_cache(cached)
    return vocab


def _next_token(scores: Tensor, sampler, device) -> Tensor:
    """The target's next token from its (processed) scores [V]: argmax, or a sample."""
    if sampler is None:
        return scores.argmax().to(device)
    return torch.tensor(sampler.draw(sampler.probs(scores.unsqueeze(0))[0]), device=device)


@torch.inference_mode()
def generate(target, draft, input_ids: Tensor, method: Method | None = None,
             max_new_tokens: int = 128, eos_token_id: int | list[int] | None = None, *,
             trace: bool = False, controller: HistoryController | None = None,
             allow_vocab_padding: bool = False,
             progress: Callable[[int], None] | None = None, do_sample: bool | None = False,
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None) -> GenerationResult:
    """Greedy decoding of ``input_ids`` [1, L] with ``method`` (default: :func:`default_method`), or
    lossless speculative sampling with ``do_sample=True``.

    The output equals ``target.generate(input_ids, do_sample=False, max_new_tokens=...)``
    token for token, ``target.generation_config`` included: the settings that change greedy
    tokens (repetition penalty, banned words and n-grams, suppressed tokens, minimum
    lengths, ...) are applied as Hugging Face applies them, and a setting that cannot be
    reproduced (beam search, stop strings, ...) is refused up front
    (:mod:`dynatree_lib.core.processors`).

    Args:
        target, draft: Hugging Face causal LMs (``draft`` unused, may be None, for AR). The
            target may be dispatched over several devices (``device_map``); the draft and
            ``input_ids`` then go to its first device (``target.device``).
        input_ids: [1, L] prompt token ids.
        method: Autoregressive(), Linear(), FixedTree() or DynaTree(); None:
            :func:`~dynatree_lib.core.methods.default_method`, DynaTree with context lookup as
            a second source (``DynaTree()`` alone is the paper's method).
        max_new_tokens: at most this many new tokens.
        eos_token_id: stop after this token (or any of a list); None uses
            ``target.generation_config.eos_token_id`` like HF ``generate``; [] never stops early.
        trace: also return an :class:`IterationTrace` per iteration.
        controller: a :class:`HistoryController` to continue from (DynaTree only); by
            default a fresh one per call, so no state leaks between prompts.
        allow_vocab_padding: accept a draft whose logits differ in size from the target's
            (same tokenizer, padded embeddings); drafts only from the shared ids, and a
            committed id the draft cannot embed is shown to it as id 0.
        progress: called with the number of new tokens so far after every target forward
            (a progress bar for long runs, e.g. the widget panel's); its time is counted in
            ``stats.time_other``.
        do_sample: False (default) decodes greedily; True samples from the distribution
            HF ``generate(do_sample=True)`` samples from (processors, then temperature, top-k,
            top-p, min-p), every method included: the speculative methods draw their drafts
            and accept them by recursive rejection sampling (:mod:`dynatree_lib.core.sampling`),
            so each token's distribution is the target's. None reads it from the target's
            generation_config, as HF does.
        temperature, top_k, top_p: sampling settings; None takes the generation_config's
            (HF's defaults: 1.0, 50, 1.0). Only with sampling.
        generator: a ``torch.Generator`` for reproducible sampling (same seed, same tokens);
            None uses torch's global generator, as HF does.

    Returns:
        GenerationResult with ``new_tokens`` (prompt excluded), ``stats`` and ``trace``.
    """
    method = default_method() if method is None else method
    entry = method_entry(method)
    if controller is not None and not entry.adapts:
        raise ValueError("a HistoryController only applies to DynaTree")
    sampler = resolve_sampler(target, do_sample, temperature, top_k, top_p, generator)
    drafter = as_drafter(draft) if entry.drafts else None
    vocab = _check_input(target, input_ids, max_new_tokens)
    if entry.drafts:
        vocab = _check_drafter(target, drafter, method, entry, input_ids.shape[1] + max_new_tokens, vocab,
                               allow_vocab_padding, probe=max_new_tokens > 0)
    eos = _eos_ids(target, eos_token_id)
    processors = build_processors(target, input_ids.shape[1], max_new_tokens, eos)
    stats = GenerationStats(prompt_tokens=input_ids.shape[1])
    traces: list[IterationTrace] | None = [] if trace else None
    if max_new_tokens == 0:
        return GenerationResult([], stats, traces)

    input_ids = input_ids.to(target.device)
    state = DecodeState(target=target, cache=DynamicCache(config=target.config), sequence=input_ids[0],
                        prefix_len=input_ids.shape[1], eos=eos, limit=max_new_tokens,
                        clock=Stopwatch(target.device), report=progress or (lambda _: None),
                        processors=processors, sampler=sampler, stats=stats, traces=traces,
                        prompt=input_ids[0].tolist() if getattr(method, "lookup", 0) else None)
    _prefill(state, drafter)
    if drafter is None:
        _autoregressive(state)
    else:
        adapting = controller if controller is not None else entry.controller(method)
        lookup = (LookupSource(method.lookup, method.lookup_ngram, method.history_window)
                  if getattr(method, "lookup", 0) else None)
        _speculate(state, Speculator(drafter, method, entry, vocab, acceptance(sampler), adapting,
                                     lookup=lookup))
    stats.new_tokens = len(state.out)
    seconds = state.clock.totals()   # the only wait for the device that timing adds
    stats.time_prefill = stats.ttft = seconds.get("prefill", 0.0)
    stats.time_draft, stats.time_verify = seconds.get("draft", 0.0), seconds.get("verify", 0.0)
    stats.time_total = seconds["total"]
    stats.time_other = stats.time_total - stats.time_prefill - stats.time_draft - stats.time_verify
    return GenerationResult(state.out, stats, traces)


def _prefill(state: DecodeState, drafter: Drafter | None) -> None:
    """The prompt's forward, the first token and, for a drafter that reads them, its states."""
    device = state.target.device
    wants_hidden = drafter is not None and drafter.needs_hidden
    prefill = state.target(state.sequence.unsqueeze(0), past_key_values=state.cache, use_cache=True,
                           logits_to_keep=1, output_hidden_states=wants_hidden)
    logits = prefill.logits[0, -1]
    if drafter is not None:
        drafter.reset()
        if wants_hidden:
            drafter.observe(prefill.hidden_states[-1][0].to(device))  # the prompt's states, no extra pass
    if state.processors is not None:
        logits = process_next(state.processors, state.sequence, logits.to(device))
    root = _next_token(logits, state.sampler, device)
    state.commit([int(root)])
    state.sequence = torch.cat([state.sequence, root.view(1)])
    state.stats.target_forwards = 1
    state.clock.lap("prefill")
    state.report(len(state.out))


def _autoregressive(state: DecodeState) -> None:
    """One target forward per token (the sequence is kept only where processors read it)."""
    device = state.target.device
    root = state.sequence[-1]
    while not state.finished():
        logits = state.target(root.view(1, 1), past_key_values=state.cache, use_cache=True).logits[0, -1]
        if state.processors is not None:
            logits = process_next(state.processors, state.sequence, logits.to(device))
        root = _next_token(logits, state.sampler, device)
        if state.processors is not None:
            state.sequence = torch.cat([state.sequence, root.view(1)])
        state.stats.target_forwards += 1
        state.commit([int(root)])
        state.report(len(state.out))
    state.clock.lap("verify")   # AR: every forward is a one-token verification


def _speculate(state: DecodeState, spec: Speculator) -> None:
    """The speculative iterations after the prefill (``state.out`` holds the first token)."""
    while not state.finished():
        _iteration(state, spec)
    if spec.controller is not None:
        stats = state.stats
        stats.controller_bounds = bound_shares(stats.base_depth, stats.theta_high, spec.method)
        if spec.controller.meter is not None:
            stats.measured_costs = {"draft_cost": spec.controller.draft_cost,
                                    "node_cost": spec.controller.node_cost,
                                    "nodes_per_level": spec.controller.width}


def _iteration(state: DecodeState, spec: Speculator) -> None:
    """Draft a tree, verify it in one target forward, accept, keep the accepted KV, adapt.

    Greedy, it reads the device at most three times (``tests/test_host_reads.py``): whether to
    grow one level beyond the planned ones (:func:`draft_tree`), the grown tree, and the accepted
    path's end with the bonus token. What the host decides goes back without a wait (transfer.py)."""
    state.clock.lap("other")   # accepting, committing, the controller: since the last verification
    rule = growth_rule(spec.method, spec.controller, depth_cap=state.limit - len(state.out) - 1)
    drafted = draft_tree(spec.drafter, state.sequence, state.prefix_len, rule, spec.vocab, state.sampler,
                         spec.levels)
    spec.levels = next_levels(drafted)
    chain = Chain([])
    if spec.lookup is not None and rule.lookup:   # the second source, within the node budget
        room = min(rule.lookup, rule.max_nodes + 1 - drafted.nodes)
        chain = spec.lookup.propose(state.prompt + state.out, rule.threshold, room)
        nodes = graft_chain(drafted.tree, chain.tokens)
        drafted.points = dict(zip([0, *nodes], chain.tokens, strict=False))   # parent -> token
    state.clock.lap("draft")
    verified = verify_tree(state.target, state.cache, drafted.tree, state.prefix_len,
                           processors=state.processors, sequence=state.sequence,
                           hidden=spec.drafter.needs_hidden, scores=spec.accept.wants_scores)
    state.clock.lap("verify")

    outcome = spec.accept(drafted, verified)   # waits for the device: the laps above are complete
    device = state.sequence.device
    keep_cache_entries(state.cache, state.prefix_len, to_device(outcome.path, device))
    spec.drafter.accept(drafted.tree, outcome.path, state.prefix_len, verified.hidden)
    emitted = state.commit(outcome.tokens)
    from_lookup = accepted_on_chain(outcome.tokens[:min(outcome.drafted, emitted)], chain)
    if spec.lookup is not None:
        spec.lookup.update(chain, from_lookup)
    _record(state, spec, drafted, outcome, emitted, from_lookup)
    if state.traces is not None:
        state.traces.append(_trace(state.prefix_len, drafted, verified.next_tokens, outcome, emitted))
    state.prefix_len += len(outcome.tokens)
    state.sequence = torch.cat([state.sequence, to_device(outcome.tokens, device)])
    state.report(len(state.out))


def _record(state: DecodeState, spec: Speculator, drafted: DraftedTree, outcome: Accepted,
            emitted: int, from_lookup: int) -> None:
    """Count the iteration (only the tokens that reached the output) and move the controller."""
    stats, path = state.stats, outcome.path
    accepted = min(outcome.drafted, emitted)  # candidates among the emitted tokens
    # grafted nodes come last; an accepted stub (sampling) is a drafted token beyond the path
    stub = max(0, accepted - (len(path) - 1))
    from_draft = sum(node < drafted.nodes for node in path[1:accepted + 1]) + stub
    stats.target_forwards += 1
    stats.draft_forwards += drafted.forwards
    stats.committed.append(emitted)
    stats.accepted.append(accepted)
    stats.accepted_drafted.append(from_draft)
    stats.accepted_lookup.append(from_lookup)
    stats.drafted_depth.append(drafted.depth)
    stats.tree_sizes.append(drafted.nodes - 1)
    stats.lookup_nodes.append(drafted.tree.size - drafted.nodes)
    if spec.controller is not None:
        stats.base_depth.append(spec.controller.base_depth)
        stats.theta_high.append(spec.controller.theta_high)
        stats.threshold.append(spec.controller.threshold)
        stats.level_cost.append(spec.controller.level_cost)
        spec.controller.observe_costs(drafted.tree.size, state.clock.last("verify"), drafted.forwards,
                                      state.clock.last("draft"), drafted.nodes - 1, drafted.depth)
        spec.controller.update(from_draft, drafted.depth)  # the draft's own acceptance


def _trace(prefix_len: int, drafted: DraftedTree, next_tokens: Tensor, outcome: Accepted,
           emitted: int) -> IterationTrace:
    tree, accepted = drafted.tree, min(outcome.drafted, emitted)
    return IterationTrace(prefix_len=prefix_len, tokens=tree.tokens.tolist(),
                          parents=tree.parents.tolist(), depths=tree.depths.tolist(),
                          draft_prob=tree.logq.exp().tolist(), path_prob=tree.logp.exp().tolist(),
                          target_next=next_tokens.tolist(),
                          accepted_path=outcome.path[:accepted + 1],
                          committed=list(outcome.tokens[:emitted]), drafted_nodes=drafted.nodes)
