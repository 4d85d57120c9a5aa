"""Every number the chapters and the README state from results files equals what the files say.

The chapters glue ``dynatree_lib.book.numbers.book_numbers()`` into their prose; the README's table is
written by ``scripts/update_readme.py``. When a results file changes and nobody re-executes the
chapter or regenerates the table, these tests fail.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
pytest.importorskip("myst_nb")

from myst_nb.ext.glue import GLUE_PREFIX  # noqa: E402

from dynatree_lib.book.numbers import book_numbers  # noqa: E402


def glued(path: Path) -> dict[str, str]:
    """{name: stored text/plain} of every glue output committed in a notebook."""
    values = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                values[scrap["name"]] = output["data"].get(GLUE_PREFIX + "text/plain",
                                                           output["data"].get("text/plain"))
    return values


def test_readme_table_matches_the_results_files():
    import update_readme

    assert update_readme.main(check=True) == 0, "run: python scripts/update_readme.py"


def test_readme_picture_matches_the_results_files():
    import readme_image

    assert readme_image.main(check=True) == 0, "run: python scripts/readme_image.py"
    assert "book/img/speedups.svg" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("chapter", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_glued_result_numbers_match_the_files(chapter):
    numbers = book_numbers()
    stored = glued(chapter)
    for name, text in stored.items():
        if name.startswith("r_"):
            assert name[2:] in numbers, f"{chapter.name}: {name} is no longer computed"
            assert text == repr(numbers[name[2:]]), (
                f"{chapter.name}: {name} = {text}, the files say {numbers[name[2:]]!r}: re-execute "
                "the chapter (python scripts/execute_book.py)")
    referenced = set(re.findall(r"\{glue:text\}`([A-Za-z0-9_]+)", chapter.read_text()))
    missing = referenced - set(stored)
    assert not missing, f"{chapter.name} refers to numbers it never glues: {sorted(missing)}"


def test_each_continued_head_run_is_read_from_its_own_restart_to_the_next():
    """head_training.json holds several runs: every warm start opens one, measured on that run's
    own held-out rows, and it ends at the point before the next warm start."""
    from dynatree_lib.book.numbers import head_training_numbers

    def point(step, value, start=None):
        return {"step": step, "start": start, "agreement_by_source": {"chat": [value, value / 2]}}

    curve = {"meta": {"instructions": 800, "chat_share": 0.7},
             "curve": [{"step": 0}, {"step": 1600}, point(1600, 0.40, "warm"), point(2600, 0.50),
                       point(2600, 0.45, "warm"), point(3000, 0.52), point(3500, 0.55)]}
    n = head_training_numbers(curve)
    assert (n["ht_runs"], n["ht_c1_from"], n["ht_c1_to"], n["ht_c2_from"], n["ht_c2_to"]) == (
        3, 1600, 2600, 2600, 3500)
    assert (n["ht_c1_start_chat_1"], n["ht_c1_end_chat_1"]) == (0.40, 0.50)
    assert (n["ht_c2_start_chat_1"], n["ht_c2_end_chat_1"], n["ht_c2_end_chat_2"]) == (0.45, 0.55, 0.275)
    assert n["ht_instructions"] == 800 and head_training_numbers({"meta": {}, "curve": [{"step": 0}]}) == {}
