"""Feature heads' agreement with the target by tree depth on its own held-out chat answers.

    python scripts/head_chat_agreement.py --head before=/tmp/head_before.safetensors   # ~6 min

The target answers Spec-Bench questions (``--per-group`` of each task group, first turns, chat
template, greedy, stops at EOS; evaluation text, never trained on) once; every head (the
committed one as ``committed``, plus each ``--head NAME=PATH``) is scored teacher-forced on those
answers: top-1 agreement with the target at tree depths 1..``--levels`` (depth d reads the head's
own predictions d - 1 steps back, as a depth-d node does), overall and per task group, and on
8,192 WikiText-2 test tokens (``draft_quality.head_agreement``). Writes
``results/head_chat_agreement.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from tqdm import tqdm

from dynatree_lib.harness.data import chat_prompt
from dynatree_lib.harness.draft_quality import answer_agreement, chat_answers, head_agreement
from dynatree_lib.harness.environment import environment
from dynatree_lib.harness.resources import output_dir
from dynatree_lib.harness.spec_bench import stratified
from dynatree_lib.models.feature_head import HEAD_WEIGHTS, load_head
from dynatree_lib.models.pairs import load_pair


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--head", action="append", default=[], metavar="NAME=PATH",
                   help="a head to score beside the committed one (repeatable)")
    p.add_argument("--per-group", type=int, default=5, help="Spec-Bench questions of each task group")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--output", type=Path, default=output_dir() / "head_chat_agreement.json")
    args = p.parse_args(argv)
    paths = {"committed": HEAD_WEIGHTS}
    for item in args.head:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--head wants NAME=PATH of an existing file, got {item!r}")
        paths[name] = Path(path)
    pair = load_pair("embedded", pack_weights=False)
    heads = {name: load_head(pair.target, path).float() for name, path in paths.items()}
    questions, _ = stratified(args.per_group, 0, seed=0)
    groups = sorted({q.group for q in questions})
    answers = {}
    for group in tqdm(groups, desc="the target answers", unit="group"):
        prompts = [chat_prompt(pair.tokenizer, [q.turns[0]], []) for q in questions if q.group == group]
        answers[group] = chat_answers(pair.target, prompts, args.max_new_tokens,
                                      pair.tokenizer.eos_token_id)
    scored = {}
    for name, head in tqdm(heads.items(), desc="scoring heads", unit="head"):
        by_group = {g: answer_agreement(head, answers[g], args.levels) for g in groups}
        counts = {g: int(answers[g]["mask"].sum()) for g in groups}
        overall = [sum(by_group[g][d] * counts[g] for g in groups) / sum(counts.values())
                   for d in range(args.levels)]
        scored[name] = {"file": f"{paths[name].name}@{head.meta.get('steps_done')}",
                        "meta": head.meta, "chat_by_depth": overall, "chat_by_group": by_group,
                        "wikitext2_by_depth": head_agreement(pair.target, head, pair.tokenizer,
                                                             levels=args.levels)["by_depth"]}
        print(f"{name:10s} chat {' / '.join(f'{a:.3f}' for a in overall)}   WikiText-2 "
              f"{' / '.join(f'{a:.3f}' for a in scored[name]['wikitext2_by_depth'])}")
    doc = {"schema": "dynatree-head-chat-agreement/1", "environment": environment(pair.device, pair.dtype),
           "command": " ".join(["python scripts/head_chat_agreement.py",
                                *(sys.argv[1:] if argv is None else argv)]),
           "questions": [q.question_id for q in questions], "per_group": args.per_group,
           "max_new_tokens": args.max_new_tokens, "levels": args.levels,
           "answer_positions": {g: int(answers[g]["mask"].sum()) for g in groups},
           "heads": scored,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    args.output.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
