"""Execute the book's notebooks in place (outputs and widget state are committed).

    python scripts/execute_book.py [book/03_token_trees.ipynb ...]
    python scripts/execute_book.py --no-save chapter.ipynb ...   # only check that every cell runs

Each notebook runs in its own folder, on the embedded pair on the CPU (as nbval runs them).
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

args = [a for a in sys.argv[1:] if a != "--no-save"]
save = "--no-save" not in sys.argv[1:]
os.environ.setdefault("DYNATREE_PAIR", "embedded")
os.environ.setdefault("DYNATREE_DEVICE", "cpu")
paths = [Path(p) for p in args] or sorted(Path(__file__).resolve().parent.parent.glob("book/*.ipynb"))
for path in paths:
    start = time.time()
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if save:
        nbformat.write(notebook, path)
    print(f"{path}: executed in {time.time() - start:.0f} s", flush=True)
