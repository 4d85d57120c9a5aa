"""Shared fixtures; the tiny random models themselves live in tiny_models.py (a unique module
name: book/conftest.py is also imported as ``conftest``)."""

from __future__ import annotations

import pytest
from tiny_models import build_target, noisy_copy


@pytest.fixture(scope="session", params=["llama", "neox"])
def pair(request):
    target = build_target(request.param)
    return target, noisy_copy(target, 0.02)
