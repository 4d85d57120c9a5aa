"""Where the project's files live: the shipped data, the committed results, new results.

A clone has ``data/`` and ``results/`` next to the package. A wheel (``pip install`` of
the repository, no clone) carries the same files as package data, under
``dynatree_lib/bundled_data`` and ``dynatree_lib/bundled_results`` (``pyproject.toml``
maps the two folders there), so the book's chapters run from an installed package alone.

* data: ``$DYNATREE_DATA``, else the clone's ``data/``, else the wheel's copy.
* results to read: ``$DYNATREE_RESULTS``, then ``./results`` in the working directory
  (where the commands write by default), then the committed files (clone or wheel); a
  file name found in an earlier folder hides the same name in a later one.
* results to write: ``--output`` or ``$DYNATREE_RESULTS``, else ``./results``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_PARENT = Path(__file__).resolve().parents[2]
# A clone (or an editable install) has pyproject.toml next to the package; an installed wheel
# sits in site-packages, whose neighbours are other packages.
_CLONE = _PARENT if (_PARENT / "pyproject.toml").is_file() else None


def _bundled(package: str) -> Path | None:
    spec = importlib.util.find_spec(f"dynatree_lib.{package}")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def data_dir() -> Path:
    """The folder with WikiText-2, the PG-19 books and the other shipped text."""
    override = os.environ.get("DYNATREE_DATA")
    if override:
        path = Path(override)
        if not path.is_dir():
            raise FileNotFoundError(f"DYNATREE_DATA={override} is not a folder")
        return path
    for candidate in (_CLONE and _CLONE / "data", _bundled("bundled_data")):
        if candidate is not None and (candidate / "wikitext2").is_dir():
            return candidate
    raise FileNotFoundError(
        "dynatree_lib's data files are missing: reinstall the package from the repository "
        "(pip install 'dynatree-lib @ git+<repository url>') or set DYNATREE_DATA to a clone's data/")


def committed_results_dir() -> Path | None:
    """The results committed with the project (clone or wheel), or None if absent."""
    for candidate in (_CLONE and _CLONE / "results", _bundled("bundled_results")):
        if candidate is not None and candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    return None


def output_dir() -> Path:
    """Where commands write results unless told otherwise: ``$DYNATREE_RESULTS`` or ``./results``."""
    return Path(os.environ.get("DYNATREE_RESULTS") or "results")


def results_dirs() -> list[Path]:
    """Folders read for results, first wins: ``$DYNATREE_RESULTS``, ``./results``, committed."""
    folders: list[Path] = []
    for candidate in (os.environ.get("DYNATREE_RESULTS"), "results", committed_results_dir()):
        if candidate is None:
            continue
        path = Path(candidate).resolve()
        if path.is_dir() and path not in folders:
            folders.append(path)
    return folders


def find_results(pattern: str) -> list[Path]:
    """Result files matching ``pattern`` (e.g. ``main_*.json``) across :func:`results_dirs`,
    sorted by name; a name in an earlier folder hides the same name in a later one."""
    found: dict[str, Path] = {}
    for folder in results_dirs():
        for path in folder.glob(pattern):
            found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def result_file(name: str) -> Path:
    """One result file by name, from the first folder of :func:`results_dirs` that has it."""
    for folder in results_dirs():
        if (folder / name).is_file():
            return folder / name
    searched = ", ".join(str(f) for f in results_dirs()) or "no results folder"
    raise FileNotFoundError(f"results file {name} not found (searched: {searched}); write it with the "
                            "command in results/README.md or set DYNATREE_RESULTS to its folder")


def describe_results_dirs() -> str:
    """One line for the chapters: which folders they read, in order."""
    folders = [_short(f) for f in results_dirs()]
    return "results read from: " + (" > ".join(folders) if folders else "(none found)")


def _short(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
