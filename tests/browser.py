"""The system Chromium for the browser tests (tests/test_site.py, tests/test_lab.py).

Debian's ``chromium`` driven by the Python ``playwright`` package; ``playwright install`` is
never used. Without them a browser test is skipped, unless ``DYNATREE_REQUIRE_BROWSER=1``
(set by CI), which turns a missing browser into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DYNATREE_CHROMIUM", "/usr/bin/chromium")


def browser_or_skip():
    """``playwright.sync_api.sync_playwright`` if the browser test can run; skip or fail if not."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package")
        sync_playwright = None
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if missing:
        message = (f"browser test needs {' and '.join(missing)} "
                   "(apt-get install chromium; pip install playwright)")
        if os.environ.get("DYNATREE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright
