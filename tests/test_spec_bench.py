"""Spec-Bench: the loader's groups and chat prompts, the benchmark loop on tiny models (turns,
EOS, per-group totals, schema) and the rule that no question ever reaches the training text."""

from __future__ import annotations

import pytest
from tiny_models import VOCAB, build_target, noisy_copy
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from dynatree_lib.harness.bench import parse_methods, read_results, write_results
from dynatree_lib.harness.data import SPEC_BENCH_GROUPS, chat_prompt, spec_bench_questions, training_texts
from dynatree_lib.harness.spec_bench import run_spec_bench, stratified
from dynatree_lib.models.pairs import ModelPair

TEMPLATE = ("{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] + '|' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}")


def test_groups_and_stratified_sample():
    every = spec_bench_questions()
    assert len(every) == 480
    counts = {g: sum(q.group == g for q in every) for g in SPEC_BENCH_GROUPS}
    assert counts == dict.fromkeys(SPEC_BENCH_GROUPS, 80)
    assert all(len(q.turns) == 2 for q in every if q.group == "mt_bench")
    sample = spec_bench_questions(per_group=3, seed=1)
    assert [q.group for q in sample] == [g for g in SPEC_BENCH_GROUPS for _ in range(3)]
    assert sample == spec_bench_questions(per_group=3, seed=1) != spec_bench_questions(per_group=3, seed=2)
    measured, warmup = stratified(2, 2, seed=0)
    assert len(warmup) == 2 and not {q.question_id for q in warmup} & {q.question_id for q in measured}
    with pytest.raises(ValueError, match="per_group"):
        spec_bench_questions(per_group=81)


def test_no_question_is_in_the_training_text():
    text = "\n".join(training_texts())
    long_ones = [t for q in spec_bench_questions() for t in q.turns if len(t) >= 50]
    assert len(long_ones) > 400
    assert not [t for t in long_ones if t[:200] in text]


@pytest.fixture(scope="module")
def chat_pair():
    chars = [chr(c) for c in range(32, 32 + VOCAB - 1)]
    core = Tokenizer(models.WordLevel(vocab={"<unk>": 0, **{ch: i + 1 for i, ch in enumerate(chars)}},
                                      unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    tokenizer.chat_template = TEMPLATE
    target = build_target("llama")
    target.config.max_position_embeddings = 2048
    target.generation_config.eos_token_id = 13  # "," in this vocabulary: answers end early sometimes
    draft = noisy_copy(target, 0.02)
    draft.config.max_position_embeddings = 2048
    return ModelPair(target, draft, tokenizer, "tiny-chat", target.device, target.dtype)


def test_chat_prompt_formats(chat_pair):
    tok = chat_pair.tokenizer
    assert tok.decode(chat_prompt(tok, ["hi"], [])).replace(" ", "") == "<user>hi|<assistant>"
    two = tok.decode(chat_prompt(tok, ["hi", "more"], ["yo"])).replace(" ", "")
    assert two == "<user>hi|<assistant>yo|<user>more|<assistant>"
    with pytest.raises(ValueError, match="one answer fewer"):
        chat_prompt(tok, ["a"], ["b"])


def test_spec_bench_runs_turns_stops_at_eos_and_totals_per_group(chat_pair, tmp_path):
    measured, warmup = stratified(1, 1, seed=0)
    methods = parse_methods("hf,hf-assisted,prompt-lookup,linear,fixed:depth=3:branch=2:threshold=0.05,"
                            "dynatree")
    doc = run_spec_bench(chat_pair, measured, methods, 12, warmup, progress=False)
    read_results(write_results(doc, tmp_path / "spec.json"))
    labels = [m["label"] for m in doc["methods"]]
    assert "fixed D=3 B=2 t=0.05" in labels
    assert doc["protocol"]["num_prompts"] == 7  # six questions, the MT-bench one with two turns
    assert sorted({r["turn"] for r in doc["records"]}) == [1, 2]
    assert all(r["verdict"] == "identical" for r in doc["records"])
    assert set(doc["groups"]) == {*SPEC_BENCH_GROUPS, "overall"}
    for group, totals in doc["groups"].items():
        assert totals["ar"]["speedup"] == 1.0 and totals["dynatree"]["tau"] >= 1.0, group
        assert len({t["tokens"] for t in totals.values()}) == 1  # exact methods write the same tokens
    assert any(r["new_tokens"] < 12 for r in doc["records"])  # some answers stopped at EOS
