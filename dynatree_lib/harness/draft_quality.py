"""How good and how cheap a draft is, measured against its target on held-out text.

* teacher-forced top-1 agreement: on WikiText-2 *test* text (never seen in training),
  the fraction of positions where draft and target rank the same token first (and, in
  :func:`agreement_profile`, how often the target's token is in the draft's top k or
  within reach of its vocabulary at all);
* linear acceptance: per-token acceptance of ``Linear(k)`` during greedy generation
  on WikiText-2 test prompts;
* memorisation: agreement on draft-training text it saw against text it never saw;
* cost: one cached one-token draft step over one cached target step after the same
  prefix, timed in the same run (median of interleaved repeats).
"""

from __future__ import annotations

import statistics

import torch
from transformers import DynamicCache

from ..core.decode import generate
from ..core.kv import keep_cache_entries
from ..core.methods import Autoregressive, Linear
from ..core.timing import now
from ..models.feature_head import FeatureHead
from ..models.unrolled import unrolled_states
from .data import chunk_corpus, prompt_set, trained_ranges, wikitext_lines


@torch.inference_mode()
def agreement_profile(target, draft, tokenizer, tokens: int = 4096, seq_len: int = 256,
                      offset: int = 0, k: int = 3, spread: bool = False) -> dict:
    """Teacher-forced agreement over ``tokens`` positions of WikiText-2 test text.

    The positions are one contiguous slice from token ``offset`` or, with ``spread``, chunks
    of ``seq_len`` tokens evenly spaced over the whole test split (the first few thousand
    tokens are two articles; a spread sample estimates agreement on the split as a whole).
    ``top1``: draft and target rank the same token first. ``topk``: the target's first token is
    among the draft's top ``k`` (what a tree of breadth k can catch). ``reachable``: the draft
    can propose the target's first token at all (a shortlist draft scores part of the vocabulary
    only). top1 well below topk says breadth pays; reachable well below 1 says the vocabulary
    limits the draft, not its capacity.
    """
    return _agreement(target, draft, wikitext_test_chunks(tokenizer, tokens, seq_len, offset, spread), k)


def wikitext_test_chunks(tokenizer, tokens: int, seq_len: int = 256, offset: int = 0,
                         spread: bool = False) -> torch.Tensor:
    """[tokens // seq_len, seq_len] WikiText-2 test tokens: contiguous from ``offset``, or
    with ``spread`` evenly spaced chunks from the first to the last of the whole split."""
    text = "".join(wikitext_lines("test"))
    if not spread:
        head = tokenizer(text[: (offset + tokens) * 8]).input_ids[offset:offset + tokens]
        ids = torch.tensor(head, device="cpu")
        return ids[: ids.numel() // seq_len * seq_len].view(-1, seq_len)
    ids = torch.tensor(tokenizer(text).input_ids, device="cpu")
    every = ids[: ids.numel() // seq_len * seq_len].view(-1, seq_len)
    count = tokens // seq_len
    if not 1 <= count <= every.shape[0]:
        raise ValueError(f"a spread sample needs 1 to {every.shape[0]} chunks of {seq_len} tokens, "
                         f"got tokens={tokens}")
    return every[torch.linspace(0, every.shape[0] - 1, count, device="cpu").round().long()]


@torch.inference_mode()
def memorization_check(target, draft, tokenizer, meta: dict, chunks_each: int = 16) -> dict:
    """Top-1 agreement on WikiText-2 *validation* chunks the draft was trained on (``seen``)
    and on validation chunks it never saw (``unseen``), for a draft from ``train.draft``
    (``meta`` = its saved metadata). ``seen`` far above ``unseen`` says the draft memorised
    its training text: more distinct text helps it more than more steps or layers would.
    """

    chunks, sources = chunk_corpus(tokenizer, meta.get("seq_len", 256), meta["seed"])
    trained = torch.zeros(chunks.shape[0], dtype=torch.bool, device="cpu")
    for start, end, heldout in trained_ranges(meta):
        trained[start + heldout:end] = True
    wiki = sources == 0
    report = {"chunks_each": chunks_each}
    for name, mask in (("seen", wiki & trained), ("unseen", wiki & ~trained)):
        picked = chunks[mask][:chunks_each]
        report[name] = _agreement(target, draft, picked)["top1"] if picked.numel() else None
    return report


def _agreement(target, draft, chunks: torch.Tensor, k: int = 3) -> dict:
    chunks = chunks.to(target.device)
    top1 = topk = reachable = 0
    for chunk in chunks:
        t = target(chunk.unsqueeze(0)).logits[0].argmax(-1)
        d = draft(chunk.unsqueeze(0)).logits[0, :, : target.config.vocab_size]
        top1 += int((d.argmax(-1) == t).sum())
        topk += int((d.topk(k, dim=-1).indices == t.unsqueeze(1)).any(-1).sum())
        reachable += int((d.gather(-1, t.unsqueeze(1)) > torch.finfo(d.dtype).min).sum())
    n = chunks.numel()
    return {"top1": top1 / n, "topk": topk / n, "k": k, "reachable": reachable / n, "tokens": n}


def teacher_forced_agreement(target, draft, tokenizer, tokens: int = 4096, seq_len: int = 256,
                             offset: int = 0) -> float:
    """Top-1 agreement over ``tokens`` positions of WikiText-2 test text, from token ``offset``."""
    return agreement_profile(target, draft, tokenizer, tokens, seq_len, offset)["top1"]


def linear_acceptance(target, draft, tokenizer, k: int = 4, num_prompts: int = 5,
                      max_new_tokens: int = 64, max_prompt_tokens: int = 128) -> dict:
    """Linear(k) over WikiText-2 test prompts: ``accepted_over_drafted`` (the library's
    acceptance rate) and ``per_token`` = accepted / (accepted + rejections), the estimate of
    Leviathan et al.'s per-token acceptance probability alpha (one rejection ends an iteration
    unless all k drafts were accepted). ``per_prompt`` holds each prompt's (accepted,
    rejections) in the order of ``prompt_set(..., seed=1)``: a prefix of it is the same
    measurement with fewer prompts."""
    per_prompt = []
    drafted = 0
    for ids in prompt_set("wikitext2", tokenizer, num_prompts, max_prompt_tokens, seed=1):
        stats = generate(target, draft, torch.tensor([ids], device=target.device), Linear(k=k),
                         max_new_tokens, eos_token_id=[]).stats
        rejections = sum(a < d for a, d in zip(stats.accepted_drafted, stats.drafted_depth, strict=True))
        per_prompt.append([sum(stats.accepted_drafted), rejections])
        drafted += sum(stats.drafted_depth)
    accepted = sum(a for a, _ in per_prompt)
    rejected = sum(r for _, r in per_prompt)
    return {"k": k, "num_prompts": num_prompts, "max_new_tokens": max_new_tokens,
            "accepted_over_drafted": accepted / drafted, "per_token": accepted / (accepted + rejected),
            "per_prompt": per_prompt}


@torch.inference_mode()
def step_cost_ratio(target, draft, prefix: int = 300, repeats: int = 30) -> dict:
    """Median cached one-token step time of draft and target (interleaved), and their ratio."""
    ids = torch.randint(0, 1000, (1, prefix), generator=torch.Generator().manual_seed(0),
                        device="cpu").to(target.device)
    times = {"target": [], "draft": []}
    caches = {}
    for name, model in (("target", target), ("draft", draft)):
        caches[name] = DynamicCache(config=model.config)
        model(ids, past_key_values=caches[name], use_cache=True)
    token = ids[:, -1:]
    for _ in range(repeats):
        for name, model in (("target", target), ("draft", draft)):
            cache = caches[name]
            start = now(target.device)
            model(token, past_key_values=cache, use_cache=True)
            times[name].append(now(target.device) - start)
            cache.crop(-1)  # back to the prefix (transformers 5: negative = tokens to drop)
    target_ms = statistics.median(times["target"]) * 1000
    draft_ms = statistics.median(times["draft"]) * 1000
    return {"target_step_ms": target_ms, "draft_step_ms": draft_ms, "ratio": draft_ms / target_ms}


@torch.inference_mode()
def head_agreement(target, head, tokenizer, tokens: int = 8192, seq_len: int = 256, levels: int = 3) -> dict:
    """Top-1 agreement of a feature head with the target's greedy token at tree depths 1..``levels``,
    on ``tokens`` WikiText-2 test tokens in chunks spread over the split (teacher-forced: depth d
    reads the head's own predictions d - 1 steps back, as a depth-d node does)."""

    chunks = wikitext_test_chunks(tokenizer, tokens, seq_len, spread=True).to(target.device)
    states, top1 = [], []
    for chunk in chunks:
        out = target(chunk.unsqueeze(0), output_hidden_states=True)
        states.append(out.hidden_states[-1][0])
        top1.append(out.logits[0].argmax(-1))
    by_level = level_agreement(head, chunks, torch.stack(states), torch.stack(top1), levels)
    return {"by_depth": by_level, "tokens": int(chunks.numel()), "sample": "spread"}


@torch.inference_mode()
def head_step_cost_ratio(target, drafter, prefix: int = 300, repeats: int = 30) -> dict:
    """Median time of one cached head step (one token) against one cached target step, interleaved."""
    device = target.device
    ids = torch.randint(0, 1000, (1, prefix), generator=torch.Generator().manual_seed(0),
                        device="cpu").to(device)
    cache = DynamicCache(config=target.config)
    states = target(ids[:, :-1], past_key_values=cache, use_cache=True,
                    output_hidden_states=True).hidden_states[-1][0]
    drafter.reset()
    drafter.observe(states)
    drafter.begin(ids[0], prefix - 1)
    head_cache = drafter.cache
    position = torch.tensor([[prefix]], device=device)
    times = {"target": [], "head": []}
    for _ in range(repeats):
        start = now(device)
        target(ids[:, -1:], past_key_values=cache, use_cache=True)
        times["target"].append(now(device) - start)
        keep_cache_entries(cache, prefix - 1, torch.zeros(0, dtype=torch.long, device=device))
        start = now(device)
        drafter.head.scores(drafter.head(states[-1:].unsqueeze(0), ids[:, -1:], position, None, head_cache))
        times["head"].append(now(device) - start)
        keep_cache_entries(head_cache, prefix - 1, torch.zeros(0, dtype=torch.long, device=device))
    target_ms = statistics.median(times["target"]) * 1000
    head_ms = statistics.median(times["head"]) * 1000
    return {"target_step_ms": target_ms, "head_step_ms": head_ms, "ratio": head_ms / target_ms}


@torch.inference_mode()
def early_exit_agreement(target, tokenizer, layers: list[int], tokens: int = 8192, seq_len: int = 256,
                         k: int = 3) -> dict:
    """A self-speculative draft without training (LayerSkip-style early exit): the target's first
    ``layer`` layers, its final norm and output rows, against the full target's greedy token.

    Teacher-forced top-1 and top-``k`` agreement at each exit layer on WikiText-2 test chunks
    spread over the split (the spread sample of :func:`head_agreement`), from one forward per
    chunk that keeps every layer's states."""
    depth = target.config.num_hidden_layers
    if not layers or any(not 1 <= layer < depth for layer in layers):
        raise ValueError(f"exit layers must lie in 1..{depth - 1}, got {layers}")
    chunks = wikitext_test_chunks(tokenizer, tokens, seq_len, spread=True).to(target.device)
    top1, topk = dict.fromkeys(layers, 0), dict.fromkeys(layers, 0)
    for chunk in chunks:
        out = target(chunk.unsqueeze(0), output_hidden_states=True)
        want = out.logits[0].argmax(-1)
        for layer in layers:
            logits = target.lm_head(target.model.norm(out.hidden_states[layer][0]))
            top1[layer] += int((logits.argmax(-1) == want).sum())
            topk[layer] += int((logits.topk(k, dim=-1).indices == want.unsqueeze(1)).any(-1).sum())
    n = chunks.numel()
    return {"layers": layers, "of": depth, "top1": [top1[x] / n for x in layers],
            "topk": [topk[x] / n for x in layers], "k": k, "tokens": n, "sample": "spread"}


@torch.inference_mode()
def early_exit_cost_ratio(target, layers: list[int], prefix: int = 300, repeats: int = 30) -> dict:
    """Median cached one-token step of the first ``layer`` layers + norm + output rows against
    the full target's step after the same prefix, interleaved (what an early-exit draft costs)."""
    import copy

    ids = torch.randint(0, min(1000, target.config.vocab_size), (1, prefix),
                        generator=torch.Generator().manual_seed(0), device="cpu").to(target.device)
    models = {"target": target}
    for layer in layers:             # shallow views sharing the target's weights
        shallow, inner = copy.copy(target), copy.copy(target.model)
        shallow._modules, inner._modules = dict(target._modules), dict(target.model._modules)  # own dicts
        inner.layers = target.model.layers[:layer]
        shallow.model = inner
        shallow.config = copy.deepcopy(target.config)
        shallow.config.num_hidden_layers = layer
        shallow.model.config = shallow.config
        models[layer] = shallow
    caches = {}
    for name, model in models.items():
        caches[name] = DynamicCache(config=model.config)
        model(ids, past_key_values=caches[name], use_cache=True)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = now(target.device)
            model(ids[:, -1:], past_key_values=caches[name], use_cache=True)
            times[name].append(now(target.device) - start)
            caches[name].crop(-1)
    target_ms = statistics.median(times["target"]) * 1000
    return {"target_step_ms": target_ms,
            "exit_step_ms": [statistics.median(times[x]) * 1000 for x in layers],
            "ratio": [statistics.median(times[x]) * 1000 / target_ms for x in layers]}


@torch.no_grad()
def level_agreement(head: FeatureHead, tokens: torch.Tensor, states: torch.Tensor, top1: torch.Tensor,
                    levels: int = 3, mask: torch.Tensor | None = None, batch: int = 4) -> list[float]:
    """Top-1 agreement with the target's greedy token at each level, teacher-forced on ``tokens``
    [N, L] with the target's ``states`` [N, L, H]; ``top1`` [N, L] the target's argmax at each
    position. Level l at position p reads the head's own prediction l steps back, as a depth-l
    node does."""
    hits, totals = [0] * levels, [0] * levels
    shortlist = head.shortlist
    for start in range(0, tokens.shape[0], batch):
        x, s = tokens[start:start + batch].long(), states[start:start + batch]
        want = top1[start:start + batch, 1:].long()
        keep_all = (torch.ones_like(want, dtype=torch.bool) if mask is None
                    else mask[start:start + batch, 1:])
        predicted = unrolled_states(head, x, s.float(), levels, grad=False)
        for level in range(levels):
            guess = shortlist[head.scores(predicted[:, level]).argmax(-1)]
            keep = keep_all.clone()
            keep[:, :level] = False
            hits[level] += int(((guess == want) & keep).sum())
            totals[level] += int(keep.sum())
    return [h / max(t, 1) for h, t in zip(hits, totals, strict=True)]


@torch.inference_mode()
def chat_answers(target, prompts: list[list[int]], max_new_tokens: int, eos_token_id: int | None) -> dict:
    """The target's own greedy answers to chat ``prompts``, right-padded into one batch: ``tokens``
    and the target's final ``states`` [N, L(, H)], its argmax ``top1`` [N, L], and ``mask`` [N, L]
    True where the next token predicted is an answer token (padding and prompt excluded)."""
    rows = []
    for prompt in prompts:
        ids = torch.tensor([prompt], device=target.device)
        answer = generate(target, None, ids, Autoregressive(), max_new_tokens, eos_token_id).new_tokens
        sequence = torch.cat([ids[0], torch.tensor(answer, device=target.device, dtype=torch.long)])
        out = target(sequence.unsqueeze(0), output_hidden_states=True)
        rows.append((sequence, out.hidden_states[-1][0], out.logits[0].argmax(-1), len(prompt)))
    length = max(row[0].numel() for row in rows)
    batch = {"tokens": torch.zeros(len(rows), length, dtype=torch.long),
             "states": torch.zeros(len(rows), length, target.config.hidden_size),
             "top1": torch.zeros(len(rows), length, dtype=torch.long),
             "mask": torch.zeros(len(rows), length, dtype=torch.bool)}
    for i, (sequence, states, top1, prompt_len) in enumerate(rows):
        n = sequence.numel()
        batch["tokens"][i, :n], batch["states"][i, :n], batch["top1"][i, :n] = sequence, states, top1
        # mask[q]: token q + 1 (top1[q]) is an answer token a tree drafts; the first answer
        # token comes from the prefill's own argmax
        batch["mask"][i, prompt_len:n - 1] = True
    return batch


def answer_agreement(head: FeatureHead, answers: dict, levels: int = 3) -> list[float]:
    """Top-1 agreement of ``head`` with the target by tree depth on :func:`chat_answers`."""
    return level_agreement(head, answers["tokens"], answers["states"], answers["top1"], levels,
                           answers["mask"])
