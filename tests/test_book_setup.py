"""Every chapter opens with the same hidden install cell, whose repository URL comes from
_config.yml (scripts/sync_setup_cells.py writes it)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import sync_setup_cells  # noqa: E402


def test_every_chapter_has_the_synced_install_cell():
    assert sync_setup_cells.main(check=True) == 0, "run: python scripts/sync_setup_cells.py"


def test_install_cell_never_replaces_torch_and_installs_the_chapters_extra():
    source = sync_setup_cells.setup_source(sync_setup_cells.repository_url())
    assert "torch==" in source and 'dynatree-lib[chapters] @ git+' in source and "--no-deps" in source
    assert 'if "google.colab" in sys.modules:' in source and "enable_custom_widget_manager()" in source
    assert "tested with torch 2.11-2.13" in source  # an untested torch stops the cell with the range
    assert max(len(line) for line in source.splitlines()) <= 88


def test_book_extra_is_the_chapters_plus_jupyterlab():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("jupyterlab" in d for d in extras["chapters"])  # installed inside a running notebook
    assert not any("onnx" in d for d in extras["chapters"])  # the export is the site build's, not a chapter's
    assert not any("jupyter-book" in d for d in extras["chapters"])  # light: no site builder for readers
    assert any(d.startswith("jupyter-book==1.") for d in extras["book"])
    assert "dynatree-lib[chapters,web]" in extras["book"]  # web: the site build writes the live page
    assert any(d.startswith("jupyterlab>=4") for d in extras["book"])
    assert "dynatree-lib[book,offload]" in extras["test"][0]


def test_nbval_runs_on_the_embedded_pair_on_the_cpu():
    namespace: dict = {}
    exec((ROOT / "book" / "conftest.py").read_text(), namespace)
    import os

    assert os.environ["DYNATREE_PAIR"] == "embedded" and os.environ["DYNATREE_DEVICE"] == "cpu"
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        assert "remove-cell" in next(c for c in notebook.cells if c.cell_type == "code").metadata["tags"]


def test_glue_shows_the_value_without_the_site_builder(monkeypatch, capsys):
    import builtins

    from dynatree_lib.book.glue import glue

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    glue("speedup", 1.25)
    glue("hidden", 2.5, display=False)
    assert capsys.readouterr().out.split() == ["1.25"]


def test_no_chapter_is_over_fifty_cells():
    """A chapter a reader can hold: split it (as chapter 4 and 4b) rather than grow it."""
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        assert len(cells) <= 50, f"{path.name} has {len(cells)} cells"
