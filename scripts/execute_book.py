"""Execute the book's notebooks in place (outputs and widget state are committed).

    python scripts/execute_book.py [book/03_token_trees.ipynb ...]
    python scripts/execute_book.py --no-save chapter.ipynb ...         # check that every cell runs
    python scripts/execute_book.py --no-save --through-data ch.ipynb   # ... up to its first data cell

Each notebook runs in its own folder, on the embedded pair on the CPU (as nbval runs them).
``--through-data`` stops after the first cell that loads prompts or results files: what CI's
wheel check needs to show that an installed package finds its data without a clone.
"""

import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

DATA_CELL = re.compile(r"prompt_set\(|read_results\(|find_results\(|read_costs\(|result_file\(")
flags = {a for a in sys.argv[1:] if a.startswith("--")}
args = [a for a in sys.argv[1:] if not a.startswith("--")]
os.environ.setdefault("DYNATREE_PAIR", "embedded")
os.environ.setdefault("DYNATREE_DEVICE", "cpu")
paths = [Path(p) for p in args] or sorted(Path(__file__).resolve().parent.parent.glob("book/*.ipynb"))
for path in paths:
    start = time.time()
    notebook = nbformat.read(path, as_version=4)
    if "--through-data" in flags:
        last = next((i for i, c in enumerate(notebook.cells)
                     if c.cell_type == "code" and DATA_CELL.search(c.source)), None)
        if last is None:
            raise SystemExit(f"{path}: no cell loads prompts or results")
        notebook.cells = notebook.cells[: last + 1]
    NotebookClient(notebook, timeout=1800, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if "--no-save" not in flags:
        nbformat.write(notebook, path)
    print(f"{path}: executed {len(notebook.cells)} cells in {time.time() - start:.0f} s", flush=True)
