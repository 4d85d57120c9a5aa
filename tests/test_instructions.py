"""The varied instructions the head's self-distillation asks the target: varied, balanced,
batchable, and never evaluation text."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from dynatree_lib.harness.spec_bench import spec_bench_questions
from dynatree_lib.train.instructions import KINDS, bucketed_prompts, varied_instructions


def _grams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_instruction_shares_an_eight_word_run_with_a_spec_bench_question():
    evaluation = set().union(*(_grams(turn) for q in spec_bench_questions() for turn in q.turns))
    pool = varied_instructions(4000, seed=0)
    assert not [text for _, text in pool if _grams(text) & evaluation]


def test_every_kind_is_asked_in_turn_and_the_pool_is_varied():
    pool = varied_instructions(1000, seed=0)
    assert Counter(kind for kind, _ in pool) == {kind: 200 for kind in KINDS}
    assert len({text for _, text in pool}) > 750       # repeats are dropped when bucketed
    assert varied_instructions(50, seed=0) == pool[:50]             # seeded
    assert varied_instructions(50, seed=1) != pool[:50]


class _Chars:
    """A stand-in chat tokenizer: one token per character of the formatted message."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        text = f"<user>{messages[0]['content']}<assistant>"
        return {"input_ids": [ord(c) % 200 for c in text]}


def test_buckets_hold_whole_batches_of_distinct_equal_length_prompts():
    buckets = bucketed_prompts(_Chars(), 64, seed=0, batch=4, max_len=150)
    rows = [tuple(r.tolist()) for prompts in buckets.values() for r in prompts]
    assert len(rows) == 64 and len(set(rows)) == 64
    for length, prompts in buckets.items():
        assert prompts.shape[1] == length <= 150 and prompts.shape[0] % 4 == 0


def test_too_few_prompts_for_a_batch_is_a_clear_error():
    with pytest.raises(SystemExit, match="at least one batch"):
        bucketed_prompts(_Chars(), 3, seed=0, batch=4, max_len=150)
