"""Varied chat instructions for the head's self-distillation (``train.head --instructions N``).

The target answers them and the head learns from its answers. Kinds a chat user asks: answer,
explain, summarise, translate, rewrite, reason, plus arithmetic word problems, small coding
requests and open-ended writing. Everything comes from templates written here and from
draft-training text (WikiText-2 *validation* article titles and sentences, the training books);
never from Spec-Bench, WikiText-2 test or the PG-19 evaluation books (tests/test_train.py checks
that no instruction shares an 8-word run with a Spec-Bench question).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

import torch

from ..harness.data import book_texts, wikitext_lines

SENTENCE_TASKS = (
    "Summarize this in one sentence:\n\n{text}",
    "Translate into German:\n\n{text}",
    "Translate into French:\n\n{text}",
    "Translate into Spanish:\n\n{text}",
    "Rewrite this in plain, modern English:\n\n{text}",
    "Rewrite this as a short, friendly message to a colleague:\n\n{text}",
    "Explain what this means to a twelve-year-old:\n\n{text}",
    "Which people, places and dates does this mention? Answer as a list.\n\n{text}",
    "Write three questions a reader might ask about this, and answer each one.\n\n{text}",
    "Is the following claim plausible? Think it through step by step.\n\n{text}",
    "What happens next? Continue the story in a few sentences.\n\n{text}",
    "Give this passage a title and explain why it fits.\n\n{text}",
)
TOPIC_TASKS = (
    "Tell me about {topic}.",
    "Write a short essay about {topic}.",
    "What should a beginner know about {topic}? Give five points.",
    "Explain why {topic} matters, in simple terms.",
    "Write a four-line poem about {topic}.",
    "Write a short encyclopedia entry on {topic}.",
    "What are common misconceptions about {topic}?",
)
WORD_PROBLEMS = (
    "{name} buys {a} boxes of {item} with {b} in each box and gives away {c}. How many {item} "
    "does {name} have left? Solve it step by step.",
    "A train travels {a} kilometres in {b} hours. At the same speed, how far does it go in {c} "
    "hours? Show your reasoning.",
    "{name} has {a} dollars, spends {b} dollars on {item} and then earns {c} dollars. How much "
    "money does {name} have now? Explain each step.",
    "A class has {a} students. {b} percent of them walk to school and the rest take the bus. "
    "How many take the bus? Work it out step by step.",
    "{name} reads {a} pages a day for {b} days, then {c} pages on the last day. How many pages "
    "did {name} read? Solve step by step.",
    "The average of {a}, {b} and {c} is what? Show the calculation.",
    "A rectangle is {a} metres long and {b} metres wide. What are its area and its perimeter? "
    "Explain.",
)
CODE_TASKS = (
    "reverses a string", "counts the vowels in a sentence", "checks whether a number is prime",
    "returns the largest value in a list", "removes duplicates from a list while keeping order",
    "computes the factorial of n", "returns the n-th Fibonacci number",
    "converts Celsius to Fahrenheit", "checks whether a word is a palindrome",
    "merges two sorted lists", "counts how often each word occurs in a text",
    "returns the sum of the digits of an integer", "flattens a list of lists",
    "finds the second smallest number in a list", "capitalizes the first letter of every word",
    "checks whether two strings are anagrams", "computes the greatest common divisor of two "
    "numbers", "returns all even numbers from a list", "reads a CSV file and prints its rows",
    "sorts a list of dictionaries by a key",
)
CODE_FORMS = ("Write a {language} function that {task}. Explain how it works.",
              "How would I write a {language} function that {task}? Show the code and an example.",
              "Write a {language} function that {task}, with comments.",
              "In {language}, what is the simplest way to write a function that {task}?")
LANGUAGES = ("Python", "JavaScript", "Java", "C", "Go", "Rust")
OPEN_TASKS = (
    "Give me five tips for {activity}.",
    "Write a short email to {person} about {activity}.",
    "Pretend you are {role}. Describe a typical day.",
    "What are the pros and cons of {activity}?",
    "Plan a one-day schedule for {activity}.",
    "Write a motivational paragraph for someone who is {activity}.",
    "As {role}, what advice would you give to a newcomer?",
)
NAMES = ("Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas")
ITEMS = ("apples", "pencils", "books", "stickers", "cookies", "marbles", "cards", "shells")
ACTIVITIES = ("learning a new language", "starting a vegetable garden", "training for a 5k run",
              "studying for an exam", "moving to a new city", "cooking for a large family",
              "saving money", "learning to play the guitar", "working from home",
              "planning a camping trip", "keeping a journal", "adopting a dog")
PEOPLE = ("a teacher", "a landlord", "a team at work", "an old friend", "a neighbour", "a manager")
ROLES = ("a lighthouse keeper", "a museum guide", "a ship's cook", "a nurse", "a farmer",
         "a train driver", "a librarian", "a park ranger", "a baker", "an astronaut")
KINDS = ("sentence", "topic", "math", "code", "open")


def _titles() -> list[str]:
    """Article titles of WikiText-2 validation (``= Title =`` lines, top level only)."""
    titles = []
    for line in wikitext_lines("validation"):
        s = line.strip()
        if s.startswith("= ") and not s.startswith("= =") and s.endswith(" ="):
            titles.append(s[2:-2].strip().replace(" @-@ ", "-").replace(" @,@ ", ","))
    return titles


def _sentences(seed: int) -> list[str]:
    """One- or two-sentence snippets of the training books (40 to 300 characters)."""
    snippets = []
    for text in book_texts("train_books/text").values():
        for paragraph in re.split(r"\n\s*\n", text):
            flat = " ".join(paragraph.split())
            parts = re.split(r"(?<=[.!?])\s+", flat)
            for i in range(0, len(parts) - 1, 2):
                snippet = " ".join(parts[i:i + 2])
                if 40 <= len(snippet) <= 300:
                    snippets.append(snippet)
    random.Random(seed).shuffle(snippets)
    return snippets


def varied_instructions(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (kind, instruction) pairs, the kinds in turn, each drawn with ``seed``."""
    rng = random.Random(seed)
    titles, sentences = _titles(), _sentences(seed)
    out = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        if kind == "sentence":
            text = rng.choice(SENTENCE_TASKS).format(text=sentences[i % len(sentences)])
        elif kind == "topic":
            text = rng.choice(TOPIC_TASKS).format(topic=rng.choice(titles))
        elif kind == "math":
            a, b, c = rng.randint(3, 60), rng.randint(2, 40), rng.randint(1, 20)
            text = rng.choice(WORD_PROBLEMS).format(name=rng.choice(NAMES), item=rng.choice(ITEMS),
                                                    a=a, b=b, c=c)
        elif kind == "code":
            text = rng.choice(CODE_FORMS).format(task=rng.choice(CODE_TASKS),
                                                 language=rng.choice(LANGUAGES))
        else:
            text = rng.choice(OPEN_TASKS).format(activity=rng.choice(ACTIVITIES),
                                                 person=rng.choice(PEOPLE), role=rng.choice(ROLES))
        out.append((kind, text))
    return out


def bucketed_prompts(tokenizer, count: int, seed: int, batch: int, max_len: int
                     ) -> dict[int, torch.Tensor]:
    """{prompt length: [n, length] chat-formatted prompts}: ``count`` distinct instructions
    (rounded down to whole batches) picked from a larger varied pool so that every length holds
    whole batches of ``batch`` equal-length prompts (batched greedy generation needs equal
    lengths), the batches taken from each kind in turn so that no kind crowds out the others."""
    if count < batch:
        raise SystemExit(f"--instructions {count}: at least one batch ({batch}) is needed")
    buckets: dict[tuple[str, int], list[list[int]]] = defaultdict(list)
    pool = varied_instructions(count * 8, seed)
    for text, kind in {text: kind for kind, text in reversed(pool)}.items():   # each text once
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=True,
                                            add_generation_prompt=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        if len(ids) <= max_len:
            buckets[kind, len(ids)].append(ids)
    rng = random.Random(seed)
    by_kind = {kind: [] for kind in KINDS}
    for (kind, length), rows in sorted(buckets.items()):
        by_kind[kind] += [(length, rows[i:i + batch]) for i in range(0, len(rows) - batch + 1, batch)]
    for batches in by_kind.values():
        rng.shuffle(batches)
    picked = []
    while len(picked) < count // batch and any(by_kind.values()):
        for batches in by_kind.values():
            if batches and len(picked) < count // batch:
                picked.append(batches.pop())
    if len(picked) < count // batch:
        raise SystemExit(f"--instructions {count}: only {len(picked) * batch} distinct equal-length "
                         f"prompts of at most {max_len} tokens")
    grouped: dict[int, list[list[int]]] = defaultdict(list)
    for length, rows in picked:
        grouped[length] += rows
    return {length: torch.tensor(rows, dtype=torch.int32) for length, rows in sorted(grouped.items())}
