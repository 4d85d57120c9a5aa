"""Text data shipped with the project: WikiText-2 (parquet) and public-domain books.

Evaluation text (WikiText-2 test, PG-19 books under ``data/pg19`` and ``data/pg19_style``)
and draft-training text (WikiText-2 validation, ``data/train_books``) never overlap.
"""

from __future__ import annotations

from pathlib import Path

from .resources import data_dir


def _require(relative: str) -> Path:
    path = data_dir() / relative
    if not path.exists():
        raise FileNotFoundError(f"data file {path} is missing (see data/README.md for what belongs there)")
    return path


def wikitext_lines(split: str) -> list[str]:
    """The raw WikiText-2 lines of ``split`` ('test' or 'validation'), read offline with pyarrow."""
    if split not in ("test", "validation"):
        raise ValueError(f"WikiText-2 split must be 'test' or 'validation', got {split!r}")
    import pyarrow.parquet as pq

    path = _require(f"wikitext2/wikitext-2-raw-{split}.parquet")
    try:
        table = pq.read_table(path)
    except Exception as error:  # a corrupt or foreign file: name it
        raise ValueError(f"cannot read {path} as WikiText-2 parquet: {error}") from error
    if "text" not in table.column_names:
        raise ValueError(f"{path} has no 'text' column (columns: {table.column_names})")
    return table.column("text").to_pylist()


def book_texts(folder: str) -> dict[str, str]:
    """{gutenberg_id: text} of the books in ``data/<folder>`` (e.g. 'train_books/text')."""
    directory = _require(folder)
    books = {p.stem: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.txt"))}
    if not books:
        raise FileNotFoundError(f"no .txt books in {directory}")
    return books


def training_texts() -> list[str]:
    """Draft-distillation text: WikiText-2 validation and the training books (no evaluation text)."""
    return ["".join(wikitext_lines("validation")), *book_texts("train_books/text").values()]


def wikitext_prompts(split: str = "test", min_chars: int = 200) -> list[str]:
    """The paper's WikiText-2 prompt recipe: paragraph lines accumulated until a blank or
    heading line (`` = Title = ``), blocks of at least ``min_chars`` characters."""
    blocks, current = [], []
    for line in wikitext_lines(split):
        stripped = line.strip()
        if not stripped or stripped.startswith("="):
            if current:
                blocks.append(" ".join(current))
            current = []
        else:
            current.append(stripped)
    if current:
        blocks.append(" ".join(current))
    return [b for b in blocks if len(b) >= min_chars]


def pg19_prompts(min_chars: int = 200) -> list[str]:
    """PG-19 evaluation prompts: per book (the 4 test-split books, then 14 other PG-19 books),
    the first paragraph of at least ``min_chars`` characters (the paper takes the first rows
    of at least 200 characters)."""
    books = {**book_texts("pg19/test_books"), **book_texts("pg19_style/text")}
    prompts = []
    for text in books.values():
        paragraphs = (" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n"))
        first = next((p for p in paragraphs if len(p) >= min_chars), None)
        if first:
            prompts.append(first)
    return prompts


def prompt_set(dataset: str, tokenizer, num_prompts: int, max_prompt_tokens: int, seed: int = 0,
               min_chars: int = 200) -> list[list[int]]:
    """``num_prompts`` token-id prompts of ``dataset``, chosen by ``seed`` and truncated to
    ``max_prompt_tokens`` tokens. Datasets: 'wikitext2' (test split) and 'pg19' for evaluation;
    'wikitext2-validation' for tuning (it is draft-training text, never an evaluation set)."""
    import random

    if dataset == "wikitext2":
        texts = wikitext_prompts("test", min_chars)
    elif dataset == "wikitext2-validation":
        texts = wikitext_prompts("validation", min_chars)
    elif dataset == "pg19":
        texts = pg19_prompts(min_chars)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use 'wikitext2', 'pg19' or 'wikitext2-validation'")
    if num_prompts > len(texts):
        raise ValueError(f"{dataset} has {len(texts)} prompts, {num_prompts} requested")
    if max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
    chosen = random.Random(seed).sample(texts, num_prompts)
    return [tokenizer(text).input_ids[:max_prompt_tokens] for text in chosen]


def chars_per_token(dataset: str, tokenizer, limit: int = 100) -> float:
    """Mean characters per token over (up to ``limit``) prompt texts of ``dataset``: maps the
    paper's character caps to ``max_prompt_tokens``."""
    texts = {"wikitext2": lambda: wikitext_prompts("test"), "pg19": pg19_prompts}[dataset]()[:limit]
    return sum(len(t) for t in texts) / sum(len(tokenizer(t).input_ids) for t in texts)
