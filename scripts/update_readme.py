"""Write the README's results table from the committed results files.

    python scripts/update_readme.py           # rewrite the table between the markers
    python scripts/update_readme.py --check   # exit 1 if the README's table is stale (tests run this)
"""

import sys
from pathlib import Path

from dynatree_lib.book.numbers import readme_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- results-table: start (scripts/update_readme.py) -->", "<!-- results-table: end -->"


def updated(text: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{readme_table()}\n{END}{tail}"


def main(check: bool) -> int:
    text = README.read_text()
    new = updated(text)
    if check:
        if new != text:
            print("README.md's results table is stale: run python scripts/update_readme.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
