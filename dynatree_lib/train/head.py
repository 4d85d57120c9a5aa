"""Train the embedded pair's feature head: ``python -m dynatree_lib.train.head`` (about 2 hours here).

One command, a fixed seed, resumable (``--resume`` continues from the last checkpoint in the
cache directory: labels, continuations and answers are cached files, the training loop saves
its state every ``--checkpoint-every`` steps). Steps:

1. collect the target's last hidden states and top-K log-probabilities over
   a. draft-training text (WikiText-2 validation and the training books; never WikiText-2
      test, the PG-19 evaluation books or Spec-Bench), through ``train.draft.label``'s cache;
   b. its own greedy continuations of openings of that text (what the head is asked at run time);
   c. its own answers to chat-formatted instructions built from that text by templates
      (summarise, explain, answer a question about, continue, translate, list key points),
      so the head also sees the chat target's answers;
   d. (``--short-chat``) its longer answers to short instructions (reason step by step, answer,
      explain, rewrite, list, translate) about a sentence or two of that text: Spec-Bench's
      questions are short and its answers long;
   e. (``--instructions``) its answers to varied standalone instructions (``train.instructions``:
      sentence tasks, topics, arithmetic word problems, coding requests, open-ended writing);
2. train the head (from the target's last layer, or ``--init-from`` an exported head, continuing
   its schedule at the step it records) with the unrolled objective of :func:`head_loss`:
   level 1 reads the target's states, level 2 (and deeper with ``--levels``) reads the head's own
   prediction one step back, attending exactly what a tree node at that depth attends at run time;
3. export int8 weights to ``dynatree_lib/models/weights/embedded_head.safetensors`` and the curve to
   ``results/head_training.json`` (held-out agreement by level, overall and by source).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..harness.data import book_texts, wikitext_prompts
from ..harness.draft_quality import level_agreement
from ..harness.resources import output_dir
from ..models.embedded import cache_dir, load_embedded_target
from ..models.feature_head import HEAD_WEIGHTS, FeatureHead, build_head, save_head
from ..models.unrolled import unrolled_states
from .draft import (
    chunk_corpus,
    distillation_loss,
    label,
    label_greedy_continuations,
    on_policy_prompts,
    optimizer_step,
    packed_copy,
    pick_shortlist,
)

TEMPLATES = ("Summarize the following text in two sentences.\n\n{text}",
             "Explain the following passage in simple words.\n\n{text}",
             "What is the main subject of the text below? Answer in one paragraph.\n\n{text}",
             "Continue this text.\n\n{text}",
             "List three key points of the following text.\n\n{text}",
             "Translate the first sentence of the following text into German.\n\n{text}",
             "Write a short title for this text and explain your choice.\n\n{text}",
             "Rewrite the following text for a ten-year-old.\n\n{text}")
SHORT_TEMPLATES = ("Think step by step: what can we conclude from this statement?\n\n{text}",
                   "Answer in detail: who or what is this about, and why does it matter?\n\n{text}",
                   "Explain this to a student, step by step.\n\n{text}",
                   "Rewrite this more formally, then explain what you changed.\n\n{text}",
                   "Give a numbered list of five questions this raises, each with a short answer.\n\n{text}",
                   "Translate into French, then explain two of your word choices.\n\n{text}",
                   "Write a short story that begins with these words.\n\n{text}",
                   "Is this statement likely true? Reason step by step, then answer yes or no.\n\n{text}")


# ---- 1. data -------------------------------------------------------------------------------------

def training_paragraphs(seed: int) -> list[str]:
    """Paragraphs of the draft-training text (WikiText-2 validation, training books), shuffled."""
    paragraphs = list(wikitext_prompts("validation"))
    for text in book_texts("train_books/text").values():
        paragraphs += [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(p) >= 300]
    random.Random(seed).shuffle(paragraphs)
    return paragraphs


def chat_prompts(tokenizer, count: int, length: int, seed: int,
                 templates: tuple[str, ...] = TEMPLATES) -> torch.Tensor:
    """[count, length] chat-formatted instructions about training paragraphs, all ``length`` tokens
    long (the paragraph is cut to fit between the template's own tokens) so they batch."""
    marker = "\x00PARAGRAPH\x00"
    prompts, rng = [], random.Random(seed)
    for paragraph in training_paragraphs(seed):
        template = rng.choice(templates)
        text = tokenizer.apply_chat_template([{"role": "user", "content": template.format(text=marker)}],
                                             tokenize=False, add_generation_prompt=True)
        before, after = text.split(marker)
        head, tail = tokenizer(before).input_ids, tokenizer(after).input_ids
        body = tokenizer(paragraph).input_ids[: length - len(head) - len(tail)]
        if len(head) + len(body) + len(tail) == length:
            prompts.append(head + body + tail)
        if len(prompts) == count:
            return torch.tensor(prompts, dtype=torch.int32)
    raise SystemExit(f"only {len(prompts)} training paragraphs are long enough for {count} chat prompts")


def answer_mask(tokens: torch.Tensor, prompt_len: int, eos: int) -> torch.Tensor:
    """[N, L] True up to and including the first EOS of each answer: what follows a chat answer's
    end is not text the head will be asked about."""
    keep = torch.ones_like(tokens, dtype=torch.bool)
    ended = (tokens[:, prompt_len:] == eos).int().cumsum(1)
    keep[:, prompt_len:] = (ended - (tokens[:, prompt_len:] == eos).int()) == 0
    return keep


def collect(target, tokenizer, args, timings: dict) -> dict:
    """All training sequences: tokens, target states, top-K labels, a loss mask and the source."""
    teacher = packed_copy(target)
    parts = []
    chunks, _ = chunk_corpus(tokenizer, args.seq_len, args.seed)
    n = min(chunks.shape[0], math.ceil(args.label_tokens / args.seq_len))
    start = time.time()
    text = label(teacher, chunks[:n], args.top_k, cache_dir() / f"labels-{args.seq_len}-{args.top_k}-{n}"
                 f"-seed{args.seed}.pt")
    timings["text_seconds"] = time.time() - start
    parts.append(("text", text, torch.ones_like(text["chunks"], dtype=torch.bool)))
    if args.continuations:
        new = args.seq_len // 4
        prompts = on_policy_prompts(tokenizer, args.continuations, args.seq_len - new, args.seed)
        start = time.time()
        written = label_greedy_continuations(teacher, prompts, new, args.top_k, cache_dir() /
                                             f"on-policy-{args.seq_len}-{args.top_k}-{args.continuations}"
                                             f"-seed{args.seed}-new{new}.pt")
        timings["continuation_seconds"] = time.time() - start
        parts.append(("continuation", written, torch.ones_like(written["chunks"], dtype=torch.bool)))
    if args.chat:
        prompt_len = args.seq_len - args.chat_tokens
        prompts = chat_prompts(tokenizer, args.chat, prompt_len, args.seed)
        start = time.time()
        answers = label_greedy_continuations(teacher, prompts, args.chat_tokens, args.top_k, cache_dir() /
                                             f"chat-{args.seq_len}-{args.top_k}-{args.chat}-seed{args.seed}.pt")
        timings["chat_seconds"] = time.time() - start
        eos = tokenizer.eos_token_id
        parts.append(("chat", answers, answer_mask(answers["chunks"], prompt_len, eos)))
    if args.short_chat:
        prompt_len = args.short_prompt_len
        # another shuffle of the paragraphs (seed + 1): other text than the long instructions'
        prompts = chat_prompts(tokenizer, args.short_chat, prompt_len, args.seed + 1, SHORT_TEMPLATES)
        start = time.time()
        answers = label_greedy_continuations(teacher, prompts, args.seq_len - prompt_len, args.top_k,
                                             cache_dir() / f"short-chat-{args.seq_len}-{args.top_k}-"
                                             f"{args.short_chat}-p{prompt_len}-seed{args.seed}.pt")
        timings["short_chat_seconds"] = time.time() - start
        parts.append(("short-chat", answers, answer_mask(answers["chunks"], prompt_len,
                                                         tokenizer.eos_token_id)))
    if args.instructions:
        parts.append(("varied-chat", *instruction_answers(teacher, tokenizer, args, timings)))
    del teacher
    data = {key: torch.cat([p[1][key] for p in parts]) for key in ("chunks", "ids", "logp", "hidden")}
    data["mask"] = torch.cat([p[2] for p in parts])
    data["source"] = torch.cat([torch.full((p[1]["chunks"].shape[0],), i) for i, p in enumerate(parts)])
    data["sources"] = [p[0] for p in parts]
    return data


def instruction_answers(teacher, tokenizer, args, timings: dict) -> tuple[dict, torch.Tensor]:
    """The target's answers to ``--instructions`` varied instructions, ``seq-len`` tokens per row
    (prompts batched by length, so answers run to the row's end), rows shuffled so that any
    held-out slice spans every length and kind; and the answer mask."""
    from .instructions import bucketed_prompts

    batch, start = 16, time.time()
    buckets = bucketed_prompts(tokenizer, args.instructions, args.seed, batch, args.seq_len // 2)
    parts, masks = [], []
    for length, prompts in buckets.items():
        labels = label_greedy_continuations(
            teacher, prompts, args.seq_len - length, args.top_k, cache_dir() / "instructions" /
            f"{args.seq_len}-{args.top_k}-{args.instructions}-seed{args.seed}-p{length}.pt", batch=batch)
        parts.append(labels)
        masks.append(answer_mask(labels["chunks"], length, tokenizer.eos_token_id))
    timings["instruction_seconds"] = time.time() - start
    order = torch.randperm(sum(m.shape[0] for m in masks), generator=torch.Generator().manual_seed(args.seed))
    answers = {key: torch.cat([p[key] for p in parts])[order] for key in ("chunks", "ids", "logp", "hidden")}
    return answers, torch.cat(masks)[order]


# ---- 2. the unrolled objective -------------------------------------------------------------------

def head_loss(head: FeatureHead, batch: dict, slot: torch.Tensor, levels: int,
              weights=(1.0, 0.8, 0.6)) -> tuple[torch.Tensor, list[float]]:
    """Distillation loss (``train.draft.distillation_loss``) at every unrolled level, on the
    positions the mask keeps; returns the weighted sum and the per-level losses."""
    tokens, states = batch["chunks"].long(), batch["hidden"].float()
    predicted = unrolled_states(head, tokens, states, levels)
    total, per_level = 0.0, []
    for level in range(levels):
        keep = batch["mask"][:, 1:].clone()
        keep[:, :level] = False                              # no prediction that far back
        pred = predicted[:, level]
        loss = distillation_loss(pred[keep].unsqueeze(0), head.scores(pred[keep]).unsqueeze(0),
                                 states[:, 1:][keep].unsqueeze(0), batch["ids"][:, 1:][keep].unsqueeze(0),
                                 batch["logp"][:, 1:][keep].unsqueeze(0), slot)
        per_level.append(loss.item())
        total = total + weights[level] * loss
    return total, per_level


# ---- 3. the command -----------------------------------------------------------------------------

def checkpoint_path(args) -> Path:
    return cache_dir() / f"head-checkpoint-seed{args.seed}.pt"


def row_sampler(source: torch.Tensor, sources: list[str], chat_share: float | None):
    """A function drawing ``n`` training rows: uniform over rows, or with ``chat_share`` of the
    draws from the chat sources (uniform within them) and the rest from the others."""
    if chat_share is None:
        return lambda n, generator: torch.randint(0, source.numel(), (n,), generator=generator)
    chat = torch.tensor([sources[int(i)].endswith("chat") for i in source])
    if not 0.0 <= chat_share <= 1.0 or (chat_share > 0 and not chat.any()) or (
            chat_share < 1 and chat.all()):
        raise SystemExit(f"--chat-share {chat_share} cannot be met by the sources {sorted(set(sources))}")
    weights = torch.where(chat, chat_share / max(int(chat.sum()), 1),
                          (1 - chat_share) / max(int((~chat).sum()), 1))
    return lambda n, generator: torch.multinomial(weights, n, replacement=True, generator=generator)


def warm_start(target, path: Path, curve_file: Path) -> tuple[FeatureHead, int, list, float]:
    """An exported head to continue from: its weights (int8, dequantized to float32) and
    shortlist, the step it was exported at, and the curve and seconds that ``curve_file`` holds
    up to that step (empty and 0 when the file records another run)."""
    from ..models.feature_head import load_head

    head = load_head(target, path).float()
    for name, param in head.named_parameters():
        param.requires_grad_(name in head.trainable_state())
    step = int(head.meta.get("steps_done", head.meta.get("steps", 0)))
    curve, seconds = [], 0.0
    if curve_file.is_file():
        saved = json.loads(curve_file.read_text())
        meta = saved.get("meta", {})
        if meta.get("steps_done") == step and meta.get("seed") == head.meta.get("seed"):
            curve = [point for point in saved["curve"] if point["step"] <= step]
            seconds = float(saved.get("total_seconds", 0.0))
    return head, step, curve, seconds


def parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dynatree_lib.train.head",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--label-tokens", type=int, default=600_000, help="labelled draft-training text tokens")
    p.add_argument("--continuations", type=int, default=600, help="greedy continuations the target writes")
    p.add_argument("--chat", type=int, default=600, help="chat instructions the target answers")
    p.add_argument("--chat-tokens", type=int, default=96, help="tokens of each chat answer")
    p.add_argument("--short-chat", type=int, default=0,
                   help="short instructions the target answers at length (seq-len minus --short-prompt-len)")
    p.add_argument("--short-prompt-len", type=int, default=72)
    p.add_argument("--instructions", type=int, default=0,
                   help="varied standalone instructions the target answers (train.instructions)")
    p.add_argument("--chat-share", type=float, default=None,
                   help="share of the training rows drawn from the chat sources (default: uniform rows)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="continue from an exported head (its schedule resumes at its recorded step; "
                        "Adam's moments restart)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--top-k", type=int, default=16)
    p.add_argument("--shortlist", type=int, default=8192)
    p.add_argument("--levels", type=int, default=2, help="unrolled levels (tree depths) trained")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--heldout", type=int, default=24, help="sequences of each source kept for monitoring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--until", type=int, default=None,
                   help="stop after this step and export (the schedule stays the one of --steps); "
                        "a later --resume continues")
    p.add_argument("--output", type=Path, default=HEAD_WEIGHTS)
    p.add_argument("--curve", type=Path, default=output_dir() / "head_training.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    until = args.steps if args.until is None else args.until
    if not 0 < until <= args.steps:
        raise SystemExit(f"--until must be in 1..--steps ({args.steps}), got {until}")
    if args.init_from is not None and not args.init_from.is_file():
        raise SystemExit(f"--init-from: no such file: {args.init_from}")
    torch.manual_seed(args.seed)
    started = time.time()
    target, tokenizer = load_embedded_target()
    for param in target.parameters():
        param.requires_grad_(False)
    timings: dict = {}
    step, curve = 0, []
    measure_start = True      # a fresh or warm start is measured on this run's held-out rows
    if args.init_from is not None:    # checked before the collection, which can take an hour uncached
        head, step, curve, timings["previous_seconds"] = warm_start(target, args.init_from, args.curve)
        if step >= until:
            raise SystemExit(f"{args.init_from} was exported at step {step}: --until/--steps must exceed it")
        print(f"continuing {args.init_from.name} from step {step} (Adam's moments restart)", flush=True)
    data = collect(target, tokenizer, args, timings)
    held = torch.zeros(data["chunks"].shape[0], dtype=torch.bool)
    for source in range(len(data["sources"])):
        held[(data["source"] == source).nonzero().flatten()[: args.heldout]] = True
    train = {k: v[~held] for k, v in data.items() if isinstance(v, torch.Tensor)}
    check = {k: v[held] for k, v in data.items() if isinstance(v, torch.Tensor)}
    vocab = target.config.vocab_size
    if args.init_from is not None:
        shortlist = head.shortlist
    else:
        shortlist = pick_shortlist(train["ids"][..., 0], args.shortlist, vocab)
        head = build_head(target, shortlist).float()
    slot = torch.full((vocab,), -1, dtype=torch.long)
    slot[shortlist] = torch.arange(shortlist.numel())
    coverage = (slot[train["ids"][..., 0].long()] >= 0).float().mean().item()
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 25)
    start_step = step    # a warm start re-warms Adam over `warmup` steps, then follows the schedule
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (s + start_step) / args.steps)))))
    generator = torch.Generator().manual_seed(args.seed + start_step)
    draw = row_sampler(train["source"], data["sources"], args.chat_share)
    if args.resume and checkpoint_path(args).is_file():
        saved = torch.load(checkpoint_path(args), weights_only=False)
        head.load_state_dict(saved["head"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        generator.set_state(saved["generator"])
        step, curve, timings = saved["step"], saved["curve"], saved["timings"]
        measure_start = False
        print(f"resumed at step {step}", flush=True)

    def evaluate(loss: float | None, levels_loss: list[float] | None) -> dict:
        head.eval()
        top1 = check["ids"][..., 0]
        by_source = {name: level_agreement(head, check["chunks"][rows], check["hidden"][rows], top1[rows],
                                           args.levels, check["mask"][rows])
                     for i, name in enumerate(data["sources"])
                     for rows in [(check["source"] == i).nonzero().flatten()]}
        counts = [int(check["mask"][check["source"] == i][:, 1:].sum()) for i in range(len(data["sources"]))]
        overall = [sum(by_source[name][level] * n for name, n in zip(data["sources"], counts, strict=True))
                   / max(sum(counts), 1) for level in range(args.levels)]
        point = {"step": step, "loss": loss, "level_losses": levels_loss, "agreement": overall,
                 "agreement_by_source": by_source,
                 "seconds": time.time() - started + timings.get("previous_seconds", 0.0)}
        head.train()
        return point

    if measure_start:
        # a carried curve's last point measured another run's held-out rows and sources
        curve.append({**evaluate(None, None), "start": "init" if len(curve) == 0 else "warm"})
        print(f"{int(train['mask'].sum())} training positions; shortlist covers {coverage:.3f} of the "
              f"target's top-1; held-out agreement by level at step {step}: {curve[-1]['agreement']}",
              flush=True)
    running, running_levels = [], []
    bar = tqdm(range(step + 1, until + 1), desc="training the head", unit="step", initial=step,
               total=until)
    head.train()
    for step in bar:
        rows = draw(args.batch, generator)
        batch = {k: v[rows] for k, v in train.items()}
        loss, per_level = head_loss(head, batch, slot, args.levels)
        running.append(optimizer_step(loss, params, optimizer, schedule))
        running_levels.append(per_level)
        if step % args.eval_every == 0 or step == until:
            levels_loss = [sum(x) / len(x) for x in zip(*running_levels, strict=True)]
            curve.append(evaluate(sum(running) / len(running), levels_loss))
            running, running_levels = [], []
            bar.set_postfix(loss=f"{curve[-1]['loss']:.3f}",
                            agree="/".join(f"{a:.2f}" for a in curve[-1]["agreement"]))
        if step % args.checkpoint_every == 0 or step == until:
            torch.save({"step": step, "head": head.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "generator": generator.get_state(),
                        "curve": curve, "timings": {**timings, "previous_seconds": time.time() - started
                                                    + timings.get("previous_seconds", 0.0)}},
                       checkpoint_path(args))
    if curve[-1]["step"] != step:  # resumed from a checkpoint between two evaluations
        curve.append(evaluate(None, None))
    total = time.time() - started + timings.get("previous_seconds", 0.0)
    meta = {"seed": args.seed, "steps": args.steps, "steps_done": step, "levels": args.levels,
            "shortlist_size": shortlist.numel(),
            "sources": data["sources"], "training_positions": int(train["mask"].sum()),
            "label_tokens": args.label_tokens, "continuations": args.continuations, "chat": args.chat,
            "short_chat": args.short_chat, "instructions": args.instructions, "chat_share": args.chat_share,
            "init_from": None if args.init_from is None else args.init_from.name}
    save_head(head, args.output, meta)
    args.curve.parent.mkdir(parents=True, exist_ok=True)
    args.curve.write_text(json.dumps({
        "command": "python -m dynatree_lib.train.head " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "shortlist_top1_coverage": coverage, "weights_bytes": args.output.stat().st_size, "meta": meta,
        "timings": timings, "curve": curve, "total_seconds": total}, indent=1) + "\n")
    print(f"saved {args.output} ({args.output.stat().st_size / 1e6:.1f} MB); held-out agreement by level "
          f"{curve[-1]['agreement']}; {total / 60:.0f} min", flush=True)


if __name__ == "__main__":
    main()
