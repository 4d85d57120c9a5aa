"""Distil the embedded draft from the embedded target: ``python -m dynatree_lib.train.draft``.

Two commands with a fixed seed rebuild the committed draft (``scripts/train_draft.sh``):
this module's defaults (stage 1, ``results/draft_training.json``), then a shorter stage
from its weights on short continuations of long prompts (``--init-from ...
--on-policy 1100 --on-policy-new-tokens 64 --on-policy-weight 0.6 --steps 600 --lr 2e-4``,
``results/draft_training_stage2.json``). Each curve file records how long each part took
on this 2-core CPU.

1. label:     the target reads all the training text (``data.training_texts``: WikiText-2
              validation + training books, never evaluation text) in fixed-length chunks
              and its top-K log-probabilities at every position are stored once in the
              cache directory (a teacher forward per training step would be far too slow).
2. on-policy: the target writes greedy continuations of ``--on-policy`` prompts (openings of
              WikiText-2 validation paragraphs, then of training-book paragraphs), labelled
              as it writes them: the text a draft is asked to predict during greedy
              speculative decoding, where the target's output drifts from human text.
              This target soon loops: 82% of the 4-grams of its 192-token continuations
              repeat earlier ones, so the second stage writes 64 tokens after long prompts.
3. shortlist: the S ids the target most often ranks first become the draft's output vocabulary.
4. train:     draft = target layers ``--layers`` + final norm + the shortlist's rows of the
              output matrix (input embedding shared with the target, frozen); loss =
              cross-entropy to the target's top-K distribution restricted to the shortlist
              + cross-entropy to the target's top-1 + a feature term; AdamW, warm-up +
              cosine. A step's sequences are continuations with probability
              ``--on-policy-weight``, else text chunks (WikiText-2 validation with
              probability ``--wikitext-weight``).
5. export:    int8 weights to ``dynatree_lib/models/weights/embedded_draft.pt`` and the loss /
              agreement curve to ``results/draft_training.json``.

``--init-from`` continues from a saved draft and ``--first-chunk`` labels only the chunks
after those an earlier run saw (how earlier drafts were built, in stages); the draft's
metadata records which text it was trained on, for ``draft-report``'s memorization check.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import DynamicCache

from ..harness.data import book_texts, chunk_corpus, trained_ranges, wikitext_prompts
from ..harness.resources import output_dir
from ..models.embedded import (
    DRAFT_WEIGHTS,
    cache_dir,
    init_draft_from_target,
    load_draft_meta,
    load_embedded_draft,
    load_embedded_target,
    save_draft,
)


@torch.inference_mode()
def label(target, chunks: torch.Tensor, top_k: int, path: Path, batch: int = 8) -> dict:
    """The target's top-K log-probs for every position of ``chunks``; resumable, cached at ``path``."""
    n = chunks.shape[0]
    if path.is_file():
        labels = torch.load(path, weights_only=True)
        if labels["done"] == n and torch.equal(labels["chunks"], chunks):
            return labels
    labels = _empty_labels(chunks, top_k, target.config.hidden_size)
    for start in tqdm(range(0, n, batch), desc="labelling with the target", unit="batch"):
        x = chunks[start:start + batch].long()
        _store(labels, slice(start, start + x.shape[0]), target, target.model(x).last_hidden_state, top_k)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(labels, path)
    return labels


def _empty_labels(chunks: torch.Tensor, top_k: int, hidden_size: int) -> dict:
    """The label record of ``chunks`` [N, L]: top-K ids and log-probs, final hidden states."""
    return {"chunks": chunks, "done": 0,
            "ids": torch.zeros(*chunks.shape, top_k, dtype=torch.int32),
            "logp": torch.zeros(*chunks.shape, top_k, dtype=torch.float16),
            "hidden": torch.zeros(*chunks.shape, hidden_size, dtype=torch.float16)}


def _store(labels: dict, rows: slice, target, hidden: torch.Tensor, top_k: int) -> None:
    """Write the target's top-K log-probs and ``hidden`` [B, L, H] for ``rows`` of ``labels``."""
    logits = target.lm_head(hidden).float()
    values, ids = logits.topk(top_k, dim=-1)  # log-probs of the top K only: no full log_softmax
    values = values - logits.logsumexp(dim=-1, keepdim=True)
    labels["ids"][rows], labels["logp"][rows] = ids.int().cpu(), values.half().cpu()
    labels["hidden"][rows] = hidden.half().cpu()
    labels["done"] = rows.stop


def packed_copy(model):
    """A copy of ``model`` with oneDNN-packed linear weights (inference only) for labelling."""
    import copy

    from ..models.packing import pack_linear_weights

    teacher = copy.deepcopy(model)
    pack_linear_weights(teacher)
    return teacher


def on_policy_prompts(tokenizer, count: int, length: int, seed: int) -> torch.Tensor:
    """[count, length] prompts: the first ``length`` tokens of seeded WikiText-2 *validation*
    paragraphs and, once those run out, of seeded paragraphs of the training books (all of it
    draft-training text; evaluation prompts come from the test split and the PG-19 books)."""
    import random
    import re

    def openings(texts):
        return [ids[:length] for ids in (tokenizer(t).input_ids for t in texts) if len(ids) >= length]

    wiki = openings(wikitext_prompts("validation"))
    picked = random.Random(seed).sample(wiki, min(count, len(wiki)))
    if count > len(wiki):
        books = openings(" ".join(p.split()) for text in book_texts("train_books/text").values()
                         for p in re.split(r"\n\s*\n", text))
        if count > len(wiki) + len(books):
            raise SystemExit(f"--on-policy {count}: WikiText-2 validation and the training books have "
                             f"{len(wiki) + len(books)} paragraphs of at least {length} tokens")
        picked += random.Random(seed).sample(books, count - len(wiki))
    return torch.tensor(picked, dtype=torch.int32)


@torch.inference_mode()
def label_greedy_continuations(target, prompts: torch.Tensor, new_tokens: int, top_k: int, path: Path,
                               batch: int = 16) -> dict:
    """The target's own greedy continuations of ``prompts`` [N, P], labelled as it writes them.

    This is the text speculative decoding asks the draft to predict (on-policy data): greedy
    continuations of a small model repeat themselves and drift from the text they continue.
    Returns the same fields as :func:`label` for [N, P + new_tokens] sequences; the labels come
    from the generating forwards (one cached forward per new token), so no second teacher pass.
    """
    n, length = prompts.shape[0], prompts.shape[1] + new_tokens
    if path.is_file():
        labels = torch.load(path, weights_only=True)
        if labels["done"] == n and torch.equal(labels["chunks"][:, :prompts.shape[1]], prompts):
            return labels
    labels = _empty_labels(torch.zeros(n, length, dtype=torch.int32), top_k, target.config.hidden_size)
    for start in tqdm(range(0, n, batch), desc="target writes greedy continuations", unit="batch"):
        x = prompts[start:start + batch].long().to(target.device)
        cache = DynamicCache(config=target.config)
        hidden = [target.model(x, past_key_values=cache, use_cache=True).last_hidden_state]
        tokens = [x]
        for _ in range(new_tokens):
            nxt = target.lm_head(hidden[-1][:, -1:]).argmax(-1)
            tokens.append(nxt)
            hidden.append(target.model(nxt, past_key_values=cache, use_cache=True).last_hidden_state)
        rows = slice(start, start + x.shape[0])
        labels["chunks"][rows] = torch.cat(tokens, dim=1).int().cpu()
        _store(labels, rows, target, torch.cat(hidden, dim=1), top_k)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(labels, path)
    return labels


def pick_shortlist(top1: torch.Tensor, size: int, vocab: int) -> torch.Tensor:
    counts = torch.bincount(top1.flatten().long(), minlength=vocab)
    return counts.topk(size).indices.sort().values


def distillation_loss(hidden: torch.Tensor, scores: torch.Tensor, target_hidden: torch.Tensor,
                      ids: torch.Tensor, logp: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """Soft + hard cross-entropy to the target, plus a feature term.

    hidden/target_hidden [B, T, H] final (normed) hidden states of draft and target;
    scores [B, T, S] draft logits over the shortlist; ids/logp [B, T, K] the target's
    top-K; slot maps a token id to its shortlist index (-1 outside). The feature term
    (mean squared error relative to the target's mean square) gives a dense signal:
    the output rows start as the target's, so matching features matches logits.
    """
    pos = slot[ids.long()]                       # [B, T, K], -1 outside the shortlist
    inside = pos >= 0
    weights = torch.where(inside, logp.float().exp(), 0.0)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-6)
    log_q = torch.log_softmax(scores, dim=-1)
    soft = -(weights * log_q.gather(-1, pos.clamp(min=0))).sum(-1)
    hard = -log_q.gather(-1, pos[..., :1].clamp(min=0)).squeeze(-1)
    hard = torch.where(inside[..., 0], hard, 0.0)
    target_hidden = target_hidden.float()
    feature = (hidden - target_hidden).pow(2).mean() / target_hidden.pow(2).mean()
    return (soft + hard).mean() + feature


@torch.no_grad()
def agreement(draft, chunks: torch.Tensor, top1: torch.Tensor, batch: int = 8) -> float:
    """Teacher-forced top-1 agreement of ``draft`` with the target's top-1 labels."""
    hits = total = 0
    for start in range(0, chunks.shape[0], batch):
        pred = draft(chunks[start:start + batch].long()).logits.argmax(-1)
        hits += (pred == top1[start:start + batch].long()).sum().item()
        total += pred.numel()
    return hits / total


def optimizer_step(loss: torch.Tensor, params, optimizer, schedule) -> float:
    """One training step shared by the draft and the head: backward, clip at 1.0, step; the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    schedule.step()
    return loss.item()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dynatree_lib.train.draft",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--label-tokens", type=int, default=None,
                   help="teacher-labelled text tokens (default: all the training text)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--top-k", type=int, default=16, help="target log-probs kept per position")
    p.add_argument("--shortlist", type=int, default=8192, help="draft output vocabulary size")
    p.add_argument("--layers", default="0,1,2,3", help="target layers the draft starts from")
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--heldout-chunks", type=int, default=48, help="chunks kept out for monitoring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wikitext-weight", type=float, default=0.4,
                   help="probability that a text chunk comes from WikiText-2 validation (the "
                        "evaluation domain; the training books share the rest)")
    p.add_argument("--first-chunk", type=int, default=0,
                   help="skip this many chunks of the seeded order (those an earlier stage labelled) "
                        "and label the next ones: fresh text for a later stage")
    p.add_argument("--on-policy", type=int, default=1200, metavar="N",
                   help="also train on the target's greedy continuations of N prompts (openings of "
                        "WikiText-2 validation paragraphs, then of training-book paragraphs; the "
                        "rest of each sequence written by the target)")
    p.add_argument("--on-policy-new-tokens", type=int, default=0, metavar="T",
                   help="tokens the target writes per prompt, after the first seq-len - T tokens "
                        "of a paragraph (0: 3/4 of --seq-len); few tokens after long prompts give "
                        "more, less repetitive continuations for the same labelling time")
    p.add_argument("--on-policy-weight", type=float, default=0.4,
                   help="probability that a training sequence is an on-policy one")
    p.add_argument("--init-from", type=Path, default=None,
                   help="continue from a saved draft (its layers, shortlist) instead of target layers")
    p.add_argument("--output", type=Path, default=DRAFT_WEIGHTS)
    p.add_argument("--curve", type=Path, default=output_dir() / "draft_training.json")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    started = time.time()
    target, tokenizer = load_embedded_target()
    chunks, sources = chunk_corpus(tokenizer, args.seq_len, args.seed)
    first = args.first_chunk
    if not 0 <= first < chunks.shape[0] - args.heldout_chunks:
        raise SystemExit(f"--first-chunk must be in [0, {chunks.shape[0] - args.heldout_chunks}), "
                         f"got {first}: the corpus has {chunks.shape[0]} chunks")
    if not (args.on_policy == 0 or args.on_policy >= 8) or not 0.0 < args.on_policy_weight < 1.0:
        raise SystemExit("--on-policy must be 0 or at least 8 (1 in 20 is held out) and "
                         "--on-policy-weight in (0, 1)")
    long_continuation = args.seq_len - args.seq_len // 4  # the earlier recipe: 3/4 of a sequence
    new_tokens = args.on_policy_new_tokens or long_continuation
    if args.on_policy and not 1 <= new_tokens < args.seq_len:
        raise SystemExit(f"--on-policy-new-tokens must be in [1, {args.seq_len}), got {new_tokens}")
    if not 0.0 <= args.wikitext_weight <= 1.0:
        raise SystemExit(f"--wikitext-weight is a probability, got {args.wikitext_weight}")
    for param in target.parameters():
        param.requires_grad_(False)
    teacher = packed_copy(target)  # labelling only: same logits, faster forwards
    n = chunks.shape[0] if args.label_tokens is None else min(
        chunks.shape[0], first + math.ceil(args.label_tokens / args.seq_len) + args.heldout_chunks)
    chunks, sources = chunks[first:n], sources[first:n]
    suffix = "" if first == 0 else f"-from{first}"  # stage 1's cache name unchanged
    # Labelling is most of a stage's cost; a cached label file makes a rerun skip it, so
    # the curve records both the time spent here and whether the cache served it.
    label_path = cache_dir() / f"labels-{args.seq_len}-{args.top_k}-{n}-seed{args.seed}{suffix}.pt"
    label_cost = {"text_cached": label_path.is_file()}
    labelling = time.time()
    labels = label(teacher, chunks, args.top_k, label_path)
    label_cost["text_seconds"] = time.time() - labelling
    train_x, held_x = labels["chunks"][args.heldout_chunks:], labels["chunks"][:args.heldout_chunks]
    train_ids, train_logp = labels["ids"][args.heldout_chunks:], labels["logp"][args.heldout_chunks:]
    train_hidden = labels["hidden"][args.heldout_chunks:]
    # Sampling weights: WikiText-2 validation chunks get probability mass --wikitext-weight
    # (the evaluation domain is WikiText-2 test), the books share the rest.
    is_wiki = (sources[args.heldout_chunks:] == 0).float()
    sample_weights = torch.where(is_wiki > 0, args.wikitext_weight / is_wiki.sum().clamp(min=1),
                                 (1 - args.wikitext_weight) / (1 - is_wiki).sum().clamp(min=1))
    held_top1 = labels["ids"][:args.heldout_chunks, :, 0]
    if args.on_policy:
        prompts = on_policy_prompts(tokenizer, args.on_policy, args.seq_len - new_tokens, args.seed)
        written_suffix = "" if new_tokens == long_continuation else f"-new{new_tokens}"  # old name kept
        written_path = (cache_dir() / f"on-policy-{args.seq_len}-{args.top_k}-{args.on_policy}"
                                      f"-seed{args.seed}{written_suffix}.pt")
        label_cost["on_policy_cached"] = written_path.is_file()
        labelling = time.time()
        written = label_greedy_continuations(teacher, prompts, new_tokens, args.top_k, written_path)
        label_cost["on_policy_seconds"] = time.time() - labelling
        held_on = max(4, args.on_policy // 20)  # the last ones only monitor agreement
        on_x, on_top1 = written["chunks"][-held_on:], written["ids"][-held_on:, :, 0]
        sample_weights = torch.cat([(1 - args.on_policy_weight) * sample_weights,
                                    torch.full((args.on_policy - held_on,),
                                               args.on_policy_weight / (args.on_policy - held_on))])
        train_x = torch.cat([train_x, written["chunks"][:-held_on]])
        train_ids = torch.cat([train_ids, written["ids"][:-held_on]])
        train_logp = torch.cat([train_logp, written["logp"][:-held_on]])
        train_hidden = torch.cat([train_hidden, written["hidden"][:-held_on]])
    del teacher

    vocab = target.config.vocab_size
    shortlist = pick_shortlist(train_ids[..., 0], args.shortlist, vocab)
    slot = torch.full((vocab,), -1, dtype=torch.long)
    slot[shortlist] = torch.arange(shortlist.numel())
    coverage = (slot[train_ids[..., 0].long()] >= 0).float().mean().item()
    layers = [int(x) for x in args.layers.split(",")]
    init_meta = load_draft_meta(args.init_from) if args.init_from is not None else None
    if init_meta is not None:  # a later stage: continue from a saved draft and its shortlist
        draft = load_embedded_draft(target, args.init_from).float()
        shortlist = draft.shortlist.clone()
        slot.fill_(-1)
        slot[shortlist] = torch.arange(shortlist.numel())
        coverage = (slot[train_ids[..., 0].long()] >= 0).float().mean().item()
        layers = init_meta["layers"]
        previous_ranges = trained_ranges(init_meta)
    else:
        draft = init_draft_from_target(target, layers, shortlist)
        previous_ranges = []
    params = [q for name, q in draft.named_parameters() if not name.startswith("model.embed_tokens")]
    for q in draft.model.embed_tokens.parameters():
        q.requires_grad_(False)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))))
    generator = torch.Generator().manual_seed(args.seed)
    def evaluate(step: int, loss: float | None) -> dict:
        point = {"step": step, "loss": loss, "agreement": agreement(draft.eval(), held_x, held_top1),
                 "seconds": time.time() - started}
        if args.on_policy:  # held-out greedy continuations: what Linear/tree drafts are asked
            point["on_policy_agreement"] = agreement(draft, on_x, on_top1)
        return point

    curve = [evaluate(0, None)]
    print(f"{train_x.shape[0] * args.seq_len} labelled tokens, shortlist covers {coverage:.3f} of target "
          f"top-1, initial held-out agreement {curve[0]['agreement']:.3f}", flush=True)
    running = []
    bar = tqdm(range(1, args.steps + 1), desc="distilling", unit="step")
    for step in bar:
        draft.train()
        batch = torch.multinomial(sample_weights, args.batch, replacement=True, generator=generator)
        hidden = draft.model(train_x[batch].long()).last_hidden_state
        loss = distillation_loss(hidden, draft.lm_head(hidden), train_hidden[batch], train_ids[batch],
                                 train_logp[batch], slot)
        running.append(optimizer_step(loss, params, optimizer, schedule))
        if step % args.eval_every == 0 or step == args.steps:
            point = evaluate(step, sum(running) / len(running))
            curve.append(point)
            running = []
            bar.set_postfix(loss=f"{point['loss']:.3f}", agree=f"{point['agreement']:.3f}")
    meta = {"num_layers": len(layers), "layers": layers, "shortlist_size": shortlist.numel(),
            "seed": args.seed, "seq_len": args.seq_len, "steps": args.steps,
            "labelled_tokens": int(train_x.numel()), "wikitext_weight": args.wikitext_weight,
            "init_from": None if args.init_from is None else args.init_from.name,
            # [start, end, held-out] chunk ranges of the seeded order this draft was trained on
            # (the first `held-out` chunks of each range only monitored): which text it has seen
            "trained_ranges": previous_ranges + [[first, n, args.heldout_chunks]],
            "on_policy_prompts": (init_meta or {}).get("on_policy_prompts", 0) + args.on_policy}
    save_draft(draft, args.output, meta)
    args.curve.parent.mkdir(parents=True, exist_ok=True)
    args.curve.write_text(json.dumps({
        "command": "python -m dynatree_lib.train.draft " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "shortlist_top1_coverage": coverage, "weights_bytes": args.output.stat().st_size,
        "meta": meta, "label_cost": label_cost, "curve": curve, "total_seconds": time.time() - started},
        indent=1))
    print(f"saved {args.output} ({args.output.stat().st_size / 1e6:.1f} MB); held-out agreement "
          f"{curve[-1]['agreement']:.3f}; {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
