"""Spec-Bench on our pair: chat questions in six task groups, every method in the same run.

The protocol of the main comparison (``bench.py``: warm-up discarded, methods rotated per
prompt, every output judged against our AR), except that generation stops at EOS, as a
chat does. A question's turns run in order: the second MT-bench turn is asked after the
model's own first answer (our AR's, which every exact method shares). Per task group,
speedup is total tokens over total time relative to AR in the same run, and tau is total
tokens over total target forwards, as Spec-Bench reports them.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from tqdm import tqdm

from .bench import SCHEMA, aggregate, pair_description, score_prompt, validate
from .data import SPEC_BENCH_GROUPS, SpecBenchQuestion, chat_prompt, spec_bench_questions
from .environment import environment
from .runner import MethodSpec, check_drafters, run_method, spec


def context_limit(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def run_spec_bench(pair, questions: list[SpecBenchQuestion], methods: list[MethodSpec], max_new_tokens: int,
                   warmup: list[SpecBenchQuestion], *, protocol: dict | None = None,
                   progress: bool = True, sampling: dict | None = None) -> dict:
    """Run ``methods`` on every turn of ``questions`` after the ``warmup`` questions (discarded)."""
    if not any(m.kind == "ar" for m in methods):
        methods = [spec("ar"), *methods]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"method labels must be unique: {labels}")
    check_drafters(pair, methods)
    limit = context_limit(pair.target)
    records, truncated, index = [], 0, 0
    total = sum(len(q.turns) for q in [*warmup, *questions]) * len(methods)
    with tqdm(total=total, desc="spec-bench", unit="run", disable=not progress) as bar:
        for number, question in enumerate([*warmup, *questions]):
            measured = number >= len(warmup)
            answers: list[str] = []
            for turn in range(len(question.turns)):
                ids = chat_prompt(pair.tokenizer, list(question.turns[:turn + 1]), answers)
                if limit is not None and len(ids) + max_new_tokens > limit:
                    ids = ids[len(ids) + max_new_tokens - limit:]  # cut from the left, as a chat window does
                    truncated += measured
                input_ids = torch.tensor([ids], device=pair.device)
                shift = index % len(methods)
                runs = {}
                for method in methods[shift:] + methods[:shift]:
                    bar.set_postfix_str(f"{question.group} {method.label}")
                    runs[method.label] = run_method(method, pair, input_ids, max_new_tokens, stop_at_eos=True,
                                                    sampling=sampling, seed=index)
                    bar.update()
                ar = next(runs[m.label] for m in methods if m.kind == "ar")
                answers.append(pair.tokenizer.decode(ar["tokens"], skip_special_tokens=True))
                index += 1
                if not measured:
                    continue
                prompt_index = len(records) // len(methods)
                for record in score_prompt(runs, methods, pair.target, input_ids, prompt_index,
                                           sampled=sampling is not None):
                    record.update(question_id=question.question_id, category=question.category,
                                  group=question.group, turn=turn + 1)
                    records.append(record)
    doc = {"schema": SCHEMA, "kind": "spec-bench", "environment": environment(pair.device, pair.dtype),
           "pair": pair_description(pair), "dataset": "spec_bench",
           "protocol": {"num_prompts": len(records) // len(methods), "questions": len(questions),
                        "warmup": len(warmup), "max_new_tokens": max_new_tokens, "stop_at_eos": True,
                        "chat_format": _chat_format(pair.tokenizer), "truncated_prompts": truncated,
                        "command": "", **({"sampling": sampling} if sampling else {}), **(protocol or {})},
           "methods": [asdict(m) for m in methods], "records": records,
           "aggregates": aggregate(records, labels), "groups": group_totals(records, labels)}
    return validate(doc)


def _chat_format(tokenizer) -> str:
    if getattr(tokenizer, "chat_template", None):
        return "the tokenizer's chat template with its default system prompt"
    return "plain 'Question: ... Answer:' turns (no chat template)"


def group_totals(records: list[dict], labels: list[str]) -> dict:
    """{group or "overall": {label: speedup, tau, throughput, tokens, seconds, prompts}} from totals:
    total tokens over total time (relative to AR's on the same prompts) and over target forwards."""
    out = {}
    for group in [*SPEC_BENCH_GROUPS, "overall"]:
        rows = [r for r in records if group == "overall" or r.get("group") == group]
        if not rows:
            continue
        totals = {}
        for label in labels:
            mine = [r for r in rows if r["method"] == label]
            tokens = sum(r["new_tokens"] for r in mine)
            seconds = sum(r["time_total"] for r in mine)
            rates = [r["copy_rate"] for r in mine if r.get("copy_rate") is not None]
            loops = [r["self_repetition"] for r in mine if r.get("self_repetition") is not None]
            totals[label] = {"tokens": tokens, "seconds": seconds, "throughput": tokens / seconds,
                             "tau": tokens / sum(r["target_forwards"] for r in mine), "prompts": len(mine),
                             "copy_rate": sum(rates) / len(rates) if rates else None,
                             "self_repetition": sum(loops) / len(loops) if loops else None}
        ar = next(label for label in labels if label == "ar")
        for label in labels:
            totals[label]["speedup"] = totals[label]["throughput"] / totals[ar]["throughput"]
        out[group] = totals
    return out


def stratified(per_group: int | None, warmup: int, seed: int) -> tuple[list[SpecBenchQuestion],
                                                                     list[SpecBenchQuestion]]:
    """(measured, warm-up): ``per_group`` questions of every group, and ``warmup`` single-turn
    questions from outside that sample (the same for every seed's measured set size)."""
    measured = spec_bench_questions(per_group, seed)
    chosen = {q.question_id for q in measured}
    rest = [q for q in spec_bench_questions() if q.question_id not in chosen and len(q.turns) == 1]
    step = max(1, len(rest) // max(warmup, 1))
    return measured, rest[::step][:warmup]
