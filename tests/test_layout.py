"""The package's layers stay visible: imports point down only, and the core stays small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dynatree_lib"
# What each layer may import of the package (itself always). The top (``__init__``, ``cli``,
# ``__main__``) may import everything.
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "harness": {"core", "models"},
    "train": {"core", "models", "harness"},
    "book": {"core", "models", "harness"},
    "web": {"core", "models", "harness"},
}
CORE_MAX_LINES, CORE_MAX_PARAMS = 60, 8
# The public entry point keeps Hugging Face's keyword names (max_new_tokens, do_sample, top_k, ...).
PUBLIC_SIGNATURES = {"generate"}


def _layer_of(module: str) -> str | None:
    """'dynatree_lib.core.tree' -> 'core'; None for the top of the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def package_imports(path: Path) -> list[str]:
    """Every dynatree_lib module ``path`` imports, relative imports resolved, at any depth."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names = [f"{name}.{alias.name}" for alias in node.names] if node.module is None else [name]
            found += [n for n in names if n.startswith("dynatree_lib")]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("dynatree_lib")]
    return found


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "bundled" not in p.parts[-2])


def test_every_module_sits_in_a_layer_or_at_the_top():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "cli.py"}, top
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} == set(ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_only(path):
    layer = _layer_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    if layer is None:
        return  # the top may import any layer
    allowed = ALLOWED[layer] | {layer}
    wrong = [m for m in package_imports(path) if _layer_of(m) not in allowed]
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports {wrong}; allowed: {sorted(allowed)}"


def test_the_scan_sees_relative_and_absolute_imports(tmp_path, monkeypatch):
    """The checker itself: a core module importing the harness, three ways, is caught."""
    core = tmp_path / "dynatree_lib" / "core"
    core.mkdir(parents=True)
    bad = core / "bad.py"
    bad.write_text("from ..harness import bench\nfrom ..harness.bench import x\n"
                   "def f():\n    import dynatree_lib.models.pairs\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "dynatree_lib")
    found = package_imports(bad)
    assert found == ["dynatree_lib.harness", "dynatree_lib.harness.bench", "dynatree_lib.models.pairs"]
    assert {_layer_of(m) for m in found} == {"harness", "models"}


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _code_lines(fn) -> int:
    """Lines of a function without its docstring."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return (body[-1].end_lineno - body[0].lineno + 1) if body else 0


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_functions_stay_small(path):
    for fn in _functions(ast.parse(path.read_text())):
        args = fn.args
        params = [a for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
        if fn.name not in PUBLIC_SIGNATURES:
            assert len(params) <= CORE_MAX_PARAMS, f"{path.name}:{fn.name} takes {len(params)} parameters"
        assert _code_lines(fn) <= CORE_MAX_LINES, f"{path.name}:{fn.name} is {_code_lines(fn)} lines"
