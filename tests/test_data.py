"""Prompt sets from data/: the paper's recipe, deterministic selection, clear errors."""

from __future__ import annotations

import pytest

import dynatree_lib.harness.data as data


class CharTokenizer:
    """One id per character: enough to test truncation without loading a real tokenizer."""

    def __call__(self, text):
        return type("Encoded", (), {"input_ids": [ord(c) % 1000 for c in text]})()


def test_wikitext_blocks_follow_the_paper_recipe():
    blocks = data.wikitext_prompts("test")
    assert len(blocks) > 100
    assert all(len(b) >= 200 and not b.startswith("=") for b in blocks)
    assert blocks[0].startswith("Robert Boulter is an English film")


def test_pg19_prompts_come_from_every_evaluation_book():
    prompts = data.pg19_prompts()
    assert len(prompts) == 18 and all(len(p) >= 200 for p in prompts)


def test_prompt_set_is_deterministic_and_truncated():
    tok = CharTokenizer()
    a = data.prompt_set("wikitext2", tok, 5, max_prompt_tokens=50, seed=3)
    assert a == data.prompt_set("wikitext2", tok, 5, max_prompt_tokens=50, seed=3)
    assert a != data.prompt_set("wikitext2", tok, 5, max_prompt_tokens=50, seed=4)
    assert all(len(p) == 50 for p in a)
    assert len(data.prompt_set("pg19", tok, 10, max_prompt_tokens=80)) == 10


def test_training_and_evaluation_text_are_disjoint():
    train = data.training_texts()
    for prompt in data.wikitext_prompts("test")[:50] + data.pg19_prompts():
        assert not any(prompt[:120] in text for text in train)


@pytest.mark.parametrize("call, message", [
    (lambda: data.prompt_set("c4", CharTokenizer(), 1, 10), "unknown dataset 'c4'"),
    (lambda: data.prompt_set("pg19", CharTokenizer(), 99, 10), "has 18 prompts, 99 requested"),
    (lambda: data.prompt_set("pg19", CharTokenizer(), 1, 0), "max_prompt_tokens must be >= 1"),
    (lambda: data.wikitext_lines("train"), "split must be 'test' or 'validation'"),
])
def test_bad_requests(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_missing_and_corrupt_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNATREE_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="wikitext-2-raw-test.parquet"):
        data.wikitext_lines("test")
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "wikitext-2-raw-test.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="wikitext-2-raw-test.parquet"):
        data.wikitext_lines("test")
    with pytest.raises(FileNotFoundError, match="train_books"):
        data.book_texts("train_books/text")


def test_chars_per_token_maps_character_caps_to_tokens():
    assert data.chars_per_token("pg19", CharTokenizer()) == 1.0  # one id per character
