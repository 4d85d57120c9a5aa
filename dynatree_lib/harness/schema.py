"""Every results file names its schema; this module checks a document against it.

The schemas are JSON Schema documents shipped in ``dynatree_lib/harness/schemas/`` (the one
place they are defined; ``results/README.md`` explains the fields) and checked with
the ``jsonschema`` library (``pip install 'dynatree-lib[bench]'``).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

SCHEMAS = {"dynatree-bench/2": "bench.schema.json", "dynatree-costs/1": "costs.schema.json",
           "dynatree-gpu-check/1": "gpu_check.schema.json",
           "dynatree-draft-report/1": "draft_report.schema.json"}


@functools.cache
def schema(name: str) -> dict:
    """The JSON Schema called ``name`` (e.g. ``"dynatree-bench/2"``)."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown results schema {name!r}: this version reads {sorted(SCHEMAS)}")
    return json.loads(resources.files("dynatree_lib.harness").joinpath("schemas", SCHEMAS[name]).read_text())


def validate(doc: dict, expected: str | None = None) -> dict:
    """Raise ``ValueError`` (naming the first offending field) unless ``doc`` follows its
    schema; ``expected`` also requires that schema. Returns ``doc``."""
    try:
        import jsonschema
    except ImportError:
        raise ImportError("validating results needs jsonschema: pip install 'dynatree-lib[bench]'") from None
    name = doc.get("schema") if isinstance(doc, dict) else None
    if expected is not None and name != expected:
        raise ValueError(f"results: schema {name!r}, expected {expected!r}")
    validator = jsonschema.Draft202012Validator(schema(str(name)))
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(f"results: {where}: {error.message}")
    return doc
