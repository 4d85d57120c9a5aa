"""Write the README's results tables from the committed results files.

    python scripts/update_readme.py           # rewrite the tables between their markers
    python scripts/update_readme.py --check   # exit 1 if a README table is stale (tests run this)
"""

import sys
from pathlib import Path

from dynatree_lib.book.numbers import default_table, readme_table

ROOT = Path(__file__).resolve().parent.parent
# marker name -> (the table, the file it lives in)
TABLES = {"default-table": (default_table, ROOT / "README.md"),
          "results-table": (readme_table, ROOT / "results" / "README.md")}


def updated(text: str, names: list[str]) -> str:
    for name in names:
        table = TABLES[name][0]
        start, end = f"<!-- {name}: start (scripts/update_readme.py) -->", f"<!-- {name}: end -->"
        if start not in text or end not in text:
            raise SystemExit(f"lacks the markers {start} ... {end}")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{table()}\n{end}{tail}"
    return text


def main(check: bool) -> int:
    stale = 0
    for path in sorted({path for _, path in TABLES.values()}):
        text = path.read_text()
        new = updated(text, [name for name, (_, p) in TABLES.items() if p == path])
        if check and new != text:
            print(f"{path.relative_to(ROOT)}: a results table is stale: run python scripts/update_readme.py")
            stale = 1
        elif not check:
            path.write_text(new)
    return stale


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
