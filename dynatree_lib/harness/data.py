"""Text data shipped with the project: WikiText-2 (parquet), public-domain books, Spec-Bench.

Evaluation text (WikiText-2 test, PG-19 books under ``data/pg19`` and ``data/pg19_style``)
and draft-training text (WikiText-2 validation, ``data/train_books``) never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

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


# ---- Spec-Bench: chat questions in six task groups (evaluation only) ------------------------

SPEC_BENCH_GROUPS = {"mt_bench": "Multi-turn Conversation", "translation": "Translation",
                     "summarization": "Summarization", "qa": "Question Answering",
                     "math_reasoning": "Mathematical Reasoning", "rag": "Retrieval-aug. Generation"}
PLAIN_FORMAT = "Question: {question}\nAnswer:"  # for a target without a chat template (Pythia)


@dataclass(frozen=True)
class SpecBenchQuestion:
    question_id: int
    category: str        # Spec-Bench's own category (the 8 MT-bench ones, translation, ...)
    group: str           # one of SPEC_BENCH_GROUPS
    turns: tuple[str, ...]


def spec_bench_questions(per_group: int | None = None, seed: int = 0) -> list[SpecBenchQuestion]:
    """The 480 Spec-Bench questions, or ``per_group`` of each of the six task groups (a stratified
    sample chosen by ``seed``), ordered group by group as in ``SPEC_BENCH_GROUPS``."""
    import json
    import random

    rows = [json.loads(line) for line in _require("spec_bench/question.jsonl").read_text().splitlines()
            if line.strip()]
    questions = [SpecBenchQuestion(r["question_id"], r["category"],
                                   r["category"] if r["category"] in SPEC_BENCH_GROUPS else "mt_bench",
                                   tuple(r["turns"])) for r in rows]
    groups = {g: [q for q in questions if q.group == g] for g in SPEC_BENCH_GROUPS}
    if per_group is None:
        return [q for g in groups.values() for q in g]
    if not 1 <= per_group <= min(len(g) for g in groups.values()):
        raise ValueError(f"per_group must lie in [1, 80], got {per_group}")
    rng = random.Random(seed)
    return [q for g in groups.values() for q in sorted(rng.sample(g, per_group), key=lambda q: q.question_id)]


def chat_prompt(tokenizer, turns: list[str], answers: list[str], system: str | None = None) -> list[int]:
    """Token ids of a conversation ready for the next answer: user ``turns`` with the model's own
    ``answers`` between them (one fewer than the turns).

    With a chat template (SmolLM2): the template, with ``system`` as the system message if
    given; SmolLM2's template otherwise inserts its own ("You are a helpful AI assistant named
    SmolLM, trained by Hugging Face"), and the benchmark keeps that default. Without one
    (Pythia): ``PLAIN_FORMAT`` per turn, answers after each ``Answer:``.
    """
    if len(answers) != len(turns) - 1:
        raise ValueError("a conversation needs one answer fewer than user turns")
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        for i, turn in enumerate(turns):
            messages.append({"role": "user", "content": turn})
            if i < len(answers):
                messages.append({"role": "assistant", "content": answers[i]})
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    text = ""
    for i, turn in enumerate(turns):
        text += PLAIN_FORMAT.format(question=turn)
        if i < len(answers):
            text += " " + answers[i].strip() + "\n"
    return tokenizer(text).input_ids


def chunk_corpus(tokenizer, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, seq_len] token chunks of all training texts in a seeded random order, and [N] the
    index of the text each chunk comes from (0 = WikiText-2 validation, then the books)."""
    chunks, sources = [], []
    for source, text in enumerate(training_texts()):
        ids = torch.tensor(tokenizer(text).input_ids, dtype=torch.int32)
        n = ids.numel() // seq_len
        chunks.append(ids[: n * seq_len].view(n, seq_len))
        sources.append(torch.full((n,), source))
    chunks, sources = torch.cat(chunks), torch.cat(sources)
    order = torch.randperm(chunks.shape[0], generator=torch.Generator().manual_seed(seed))
    return chunks[order], sources[order]


def trained_ranges(meta: dict) -> list[list[int]]:
    """The [start, end, held-out] chunk ranges a draft was trained on, from its metadata.

    Drafts saved before ranges were recorded (stages 1 and 2) labelled the first chunks of the
    order with the default 48 held out: ``labelled_tokens`` tells how many.
    """
    if "trained_ranges" in meta:
        return [list(r) for r in meta["trained_ranges"]]
    heldout = 48
    return [[0, meta["labelled_tokens"] // 256 + heldout, heldout]]
