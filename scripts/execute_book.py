"""Re-execute the book's notebooks in place (outputs and widget state are committed).

    python scripts/execute_book.py [book/03_token_trees.ipynb ...]
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

paths = [Path(p) for p in sys.argv[1:]] or sorted(Path(__file__).resolve().parent.parent.glob("book/*.ipynb"))
for path in paths:
    start = time.time()
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)
    print(f"{path}: executed in {time.time() - start:.0f} s", flush=True)
