"""The decoding loop: prefill, then draft -> verify -> accept -> keep KV -> adapt.

Greedy and exact: every committed token is the target's argmax after the tokens
before it, so ``new_tokens`` equals the target's own greedy ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from transformers import DynamicCache

from .adapt import HistoryController, bound_shares
from .drafters import as_drafter
from .drafting import draft_tree, growth_rule
from .lookup import find_continuation, graft_chain
from .methods import Autoregressive, DynaTree, FixedTree, Linear, Method
from .processors import build_processors, process_next
from .sampling import resolve_sampler, sample_walk
from .timing import Stopwatch
from .verify import check_sliding_window, check_tree_attention, keep_cache_entries, verify_tree, vocab_size


@dataclass
class GenerationStats:
    """Counters and timings of one ``generate`` call (names as in the book's notation table).

    Per-iteration lists have one entry per draft/verify iteration (the prefill is not one).
    They count only tokens that reach the output: when EOS or ``max_new_tokens`` ends the
    generation inside an accepted path, the last iteration's counts stop there too.

    * ``committed``: tokens emitted (accepted candidates + the bonus token);
    * ``accepted``: candidate tokens accepted, from the draft or from context lookup;
    * ``accepted_drafted``: those the draft model proposed (what acceptance rates count);
    * ``drafted_depth``: depth of the draft's own tree (grafted lookup nodes excluded);
    * ``tree_sizes``: draft nodes per tree (root and lookup nodes excluded);
    * ``lookup_nodes``: nodes grafted by ``DynaTree(lookup=L)`` (0 otherwise);
    * ``base_depth``, ``tau_high``: DynaTree's D_0 and tau_high each tree was grown with;
      ``controller_bounds``: the share of iterations with either at a bound of its range
      (:func:`dynatree_lib.adapt.bound_shares`).

    Times are seconds, read after the device finished its queued work (``timing.now``).
    """

    prompt_tokens: int = 0
    new_tokens: int = 0
    target_forwards: int = 0
    draft_forwards: int = 0
    committed: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    accepted_drafted: list[int] = field(default_factory=list)
    drafted_depth: list[int] = field(default_factory=list)
    tree_sizes: list[int] = field(default_factory=list)
    lookup_nodes: list[int] = field(default_factory=list)
    base_depth: list[float] = field(default_factory=list)
    tau_high: list[float] = field(default_factory=list)
    controller_bounds: dict[str, float] | None = None
    time_prefill: float = 0.0
    time_draft: float = 0.0
    time_verify: float = 0.0
    time_other: float = 0.0
    time_total: float = 0.0
    ttft: float = 0.0

    @property
    def iterations(self) -> int:
        return len(self.committed)

    @property
    def tau(self) -> float:
        """Mean committed tokens per target forward, prefill and bonus tokens included (AR: 1)."""
        return self.new_tokens / self.target_forwards if self.target_forwards else 0.0

    @property
    def acceptance_rate(self) -> float:
        """alpha: accepted draft tokens / drafted depth (for a chain: / drafted tokens)."""
        drafted = sum(self.drafted_depth)
        return sum(self.accepted_drafted) / drafted if drafted else 0.0

    @property
    def tree_efficiency(self) -> float:
        """Accepted draft tokens / draft tree nodes."""
        nodes = sum(self.tree_sizes)
        return sum(self.accepted_drafted) / nodes if nodes else 0.0

    @property
    def accepted_per_depth(self) -> list[float]:
        """Entry d-1: fraction of iterations whose accepted draft path reached depth d."""
        if not self.accepted_drafted or not max(self.drafted_depth):
            return []
        n = len(self.accepted_drafted)
        return [sum(a >= d for a in self.accepted_drafted) / n
                for d in range(1, max(self.drafted_depth) + 1)]

    @property
    def throughput(self) -> float:
        """New tokens per second of the whole call, prefill included."""
        return self.new_tokens / self.time_total if self.time_total else 0.0

    @property
    def tpot(self) -> float:
        """Time per output token after the first: (total - TTFT) / (T - 1)."""
        return (self.time_total - self.ttft) / (self.new_tokens - 1) if self.new_tokens > 1 else 0.0

    def summary(self) -> dict[str, float]:
        """The headline metrics as a flat dict."""
        return {"new_tokens": self.new_tokens, "iterations": self.iterations,
                "target_forwards": self.target_forwards, "draft_forwards": self.draft_forwards,
                "tau": self.tau, "acceptance_rate": self.acceptance_rate,
                "tree_efficiency": self.tree_efficiency, "throughput": self.throughput,
                "ttft": self.ttft, "tpot": self.tpot, "time_total": self.time_total,
                "time_draft": self.time_draft, "time_verify": self.time_verify,
                "time_other": self.time_other, "time_prefill": self.time_prefill}


@dataclass
class IterationTrace:
    """One iteration, for visualisations. Node 0 is the root (parent -1); nodes from index
    ``drafted_nodes`` on were grafted by context lookup, not drafted."""

    prefix_len: int
    tokens: list[int]
    parents: list[int]
    depths: list[int]
    draft_prob: list[float]       # q(node | parent path); 1 for grafted nodes
    path_prob: list[float]        # p(node), cumulative
    target_next: list[int]        # target's greedy token after each node
    accepted_path: list[int]      # node indices, root first, up to the last emitted token
    committed: list[int]          # tokens emitted: accepted candidates + bonus
    drafted_nodes: int = 0        # nodes 0 .. drafted_nodes - 1 come from the draft (root included)


@dataclass
class GenerationResult:
    new_tokens: list[int]
    stats: GenerationStats
    trace: list[IterationTrace] | None = None


def _eos_ids(target, eos_token_id: int | list[int] | None) -> set[int]:
    if eos_token_id is None:  # as HF generate: fall back to the model's generation config
        config = getattr(target, "generation_config", None)
        eos_token_id = getattr(config, "eos_token_id", None)
    if eos_token_id is None:
        return set()
    return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(t) for t in eos_token_id}


def _tree_capacity(method: Method) -> int:
    """Most tokens one verification appends to a cache: the root and every candidate node."""
    if isinstance(method, Linear):
        return method.k + 1
    if isinstance(method, FixedTree):
        return method.max_nodes + 1
    if isinstance(method, DynaTree):
        return method.max_nodes + 1 + method.lookup
    return 1


def _validate(target, draft, input_ids, method, max_new_tokens, allow_vocab_padding) -> int:
    """Check everything before any forward; returns the vocabulary size drafts may use."""
    if not isinstance(method, (Autoregressive, Linear, FixedTree, DynaTree)):
        raise TypeError(f"method must be Autoregressive, Linear, FixedTree or DynaTree, got {method!r}")
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
    length = input_ids.shape[1] + max_new_tokens
    window = getattr(target.config, "max_position_embeddings", None)
    if window is not None and length > window:
        raise ValueError(f"prompt ({input_ids.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds "
                         f"the target's context window of {window} tokens")
    if isinstance(method, Autoregressive):
        return vocab
    if draft is None:
        raise ValueError(f"{type(method).__name__} needs a draft model")
    draft_vocab = draft.vocab_size()
    if draft_vocab != vocab:
        if not allow_vocab_padding:
            raise ValueError(
                f"target and draft vocabularies differ ({vocab} vs {draft_vocab} logits); if both use "
                "the same tokenizer and only the embedding matrices are padded, "
                "pass allow_vocab_padding=True")
        vocab = min(vocab, draft_vocab)
    if draft.device != target.device:
        raise ValueError(f"put the draft on the target's first device (target: {target.device}, "
                         f"draft: {draft.device})")
    draft.validate(target, length)
    check_tree_attention(target)
    check_sliding_window(target, length - 1 + _tree_capacity(method))
    draft.check_cache(length - 1 + _tree_capacity(method))
    return vocab


def _next_token(scores: Tensor, sampler, device) -> Tensor:
    """The target's next token from its (processed) scores [V]: argmax, or a sample."""
    if sampler is None:
        return scores.argmax().to(device)
    return torch.tensor(sampler.draw(sampler.probs(scores.unsqueeze(0))[0]), device=device)


def _commit(out: list[int], tokens: list[int], eos: set[int], limit: int) -> int:
    """Append tokens up to the limit or the first EOS (kept, as HF does); returns how many."""
    for count, token in enumerate(tokens, 1):
        out.append(token)
        if token in eos or len(out) >= limit:
            return count
    return len(tokens)


def _finished(out: list[int], eos: set[int], limit: int) -> bool:
    return len(out) >= limit or (bool(out) and out[-1] in eos)


@torch.inference_mode()
def generate(target, draft, input_ids: Tensor, method: Method | None = None,
             max_new_tokens: int = 128, eos_token_id: int | list[int] | None = None, *,
             trace: bool = False, controller: HistoryController | None = None,
             allow_vocab_padding: bool = False,
             progress: Callable[[int], None] | None = None, do_sample: bool | None = False,
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None) -> GenerationResult:
    """Greedy decoding of ``input_ids`` [1, L] with ``method`` (default ``DynaTree()``), or
    lossless speculative sampling with ``do_sample=True``.

    The output equals ``target.generate(input_ids, do_sample=False, max_new_tokens=...)``
    token for token, ``target.generation_config`` included: the settings that change greedy
    tokens (repetition penalty, banned words and n-grams, suppressed tokens, minimum
    lengths, ...) are applied as Hugging Face applies them, and a setting that cannot be
    reproduced (beam search, stop strings, ...) is refused up front
    (:mod:`dynatree_lib.processors`).

    Args:
        target, draft: Hugging Face causal LMs (``draft`` unused, may be None, for AR). The
            target may be dispatched over several devices (``device_map``); the draft and
            ``input_ids`` then go to its first device (``target.device``).
        input_ids: [1, L] prompt token ids.
        method: Autoregressive(), Linear(), FixedTree() or DynaTree().
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
            and accept them by recursive rejection sampling (:mod:`dynatree_lib.sampling`),
            so each token's distribution is the target's. None reads it from the target's
            generation_config, as HF does.
        temperature, top_k, top_p: sampling settings; None takes the generation_config's
            (HF's defaults: 1.0, 50, 1.0). Only with sampling.
        generator: a ``torch.Generator`` for reproducible sampling (same seed, same tokens);
            None uses torch's global generator, as HF does.

    Returns:
        GenerationResult with ``new_tokens`` (prompt excluded), ``stats`` and ``trace``.
    """
    method = DynaTree() if method is None else method
    if controller is not None and not isinstance(method, DynaTree):
        raise ValueError("a HistoryController only applies to DynaTree")
    sampler = resolve_sampler(target, do_sample, temperature, top_k, top_p, generator)
    if sampler is not None and getattr(method, "lookup", 0):
        raise ValueError("the lookup extension is greedy only: use lookup=0 with do_sample=True")
    draft = None if isinstance(method, Autoregressive) else as_drafter(draft)
    vocab = _validate(target, draft, input_ids, method, max_new_tokens, allow_vocab_padding)
    eos = _eos_ids(target, eos_token_id)
    processors = build_processors(target, input_ids.shape[1], max_new_tokens, eos)
    stats = GenerationStats(prompt_tokens=input_ids.shape[1])
    traces: list[IterationTrace] | None = [] if trace else None
    out: list[int] = []
    if max_new_tokens == 0:
        return GenerationResult(out, stats, traces)

    device = target.device
    input_ids = input_ids.to(device)
    clock = Stopwatch(device)
    cache = DynamicCache(config=target.config)
    wants_hidden = draft is not None and draft.needs_hidden
    prefill = target(input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1,
                     output_hidden_states=wants_hidden)
    logits = prefill.logits[0, -1]
    if draft is not None:
        draft.reset()
        if wants_hidden:
            draft.observe(prefill.hidden_states[-1][0].to(device))  # the prompt's states, no extra pass
    if processors is not None:
        logits = process_next(processors, input_ids[0], logits.to(device))
    root = _next_token(logits, sampler, device)
    _commit(out, [int(root)], eos, max_new_tokens)
    stats.target_forwards = 1
    stats.time_prefill = stats.ttft = clock.lap()
    report = progress or (lambda _: None)
    report(len(out))

    if isinstance(method, Autoregressive):
        sequence = torch.cat([input_ids[0], root.view(1)])
        while not _finished(out, eos, max_new_tokens):
            logits = target(root.view(1, 1), past_key_values=cache, use_cache=True).logits[0, -1]
            if processors is not None:
                logits = process_next(processors, sequence, logits.to(device))
            root = _next_token(logits, sampler, device)
            sequence = torch.cat([sequence, root.view(1)]) if processors is not None else sequence
            stats.target_forwards += 1
            _commit(out, [int(root)], eos, max_new_tokens)
            report(len(out))
        stats.time_verify = clock.lap()
    else:
        _speculate(target, draft, input_ids, method, max_new_tokens, eos, vocab, processors,
                   controller, cache, out, stats, traces, clock, report, sampler)

    stats.new_tokens = len(out)
    stats.time_total = clock.total()
    stats.time_other = stats.time_total - stats.time_prefill - stats.time_draft - stats.time_verify
    return GenerationResult(out, stats, traces)


def _speculate(target, draft, input_ids, method, max_new_tokens, eos, vocab, processors, controller,
               cache, out, stats, traces, clock, report, sampler=None) -> None:
    """The speculative iterations after the prefill (``out`` holds the first token)."""
    device = input_ids.device
    if isinstance(method, DynaTree) and controller is None:
        controller = HistoryController(method)
    # Every committed token; the drafter catches up on the ones it has not seen.
    sequence = torch.cat([input_ids[0], torch.tensor(out, device=device)])
    prefix_len = input_ids.shape[1]  # target-cached tokens; the root sits at this position
    while not _finished(out, eos, max_new_tokens):
        clock.lap()
        rule = growth_rule(method, controller, depth_cap=max_new_tokens - len(out) - 1)
        drafted = draft_tree(draft, sequence, prefix_len, rule, vocab, sampler)
        tree = drafted.tree
        drafted_nodes, drafted_depth = tree.size, tree.depth
        if rule.lookup:
            graft_chain(tree, find_continuation(sequence, rule.lookup, method.lookup_ngram))
        stats.time_draft += clock.lap()
        verified = verify_tree(target, cache, tree, prefix_len, processors, sequence, draft.needs_hidden,
                               scores=sampler is not None)
        target_next, hidden = verified if draft.needs_hidden else (verified, None)
        stats.time_verify += clock.lap()

        if sampler is None:
            path = tree.accepted_path(target_next)
            committed = tree.tokens[path[1:]].tolist() + [int(target_next[path[-1]])]
            drafted_tokens = len(committed) - 1
        else:  # target_next holds scores: accept by recursive rejection sampling
            walk = sample_walk(tree, drafted.proposals, target_next, sampler)
            path, committed, drafted_tokens = walk.path, walk.tokens, walk.drafted
            target_next = target_next.argmax(dim=-1)  # the trace shows the target's top token
        keep_cache_entries(cache, prefix_len, path)
        draft.accept(tree, path, prefix_len, hidden)
        emitted = _commit(out, committed, eos, max_new_tokens)
        accepted = min(drafted_tokens, emitted)  # candidates among the emitted tokens
        # grafted nodes come last; an accepted stub (sampling) is a drafted token beyond the path
        from_draft = int((path[1:accepted + 1] < drafted_nodes).sum()) + max(0, accepted - (len(path) - 1))
        stats.target_forwards += 1
        stats.draft_forwards += drafted.forwards
        stats.committed.append(emitted)
        stats.accepted.append(accepted)
        stats.accepted_drafted.append(from_draft)
        stats.drafted_depth.append(drafted_depth)
        stats.tree_sizes.append(drafted_nodes - 1)
        stats.lookup_nodes.append(tree.size - drafted_nodes)
        if controller is not None:
            stats.base_depth.append(controller.base_depth)
            stats.tau_high.append(controller.tau_high)
            controller.update(from_draft, drafted_depth)  # the draft's own acceptance
        if traces is not None:
            traces.append(_trace(tree, prefix_len, target_next, path[:accepted + 1], committed[:emitted],
                                 drafted_nodes))
        prefix_len += len(committed)
        sequence = torch.cat([sequence, torch.tensor(committed, device=device)])
        report(len(out))
    if controller is not None:
        stats.controller_bounds = bound_shares(stats.base_depth, stats.tau_high, method)


def _trace(tree, prefix_len, target_next, path, committed, drafted_nodes) -> IterationTrace:
    return IterationTrace(prefix_len=prefix_len, tokens=tree.tokens.tolist(),
                          parents=tree.parents.tolist(), depths=tree.depths.tolist(),
                          draft_prob=tree.logq.exp().tolist(), path_prob=tree.logp.exp().tolist(),
                          target_next=target_next.tolist(), accepted_path=path.tolist(),
                          committed=list(committed), drafted_nodes=drafted_nodes)
