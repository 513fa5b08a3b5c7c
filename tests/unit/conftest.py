"""Fixtures shared by unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pagemill.settings import get_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PAGEMILL_* variable of the caller's shell leaks in, and no cached settings leak out."""
    for name in list(os.environ):
        if name.startswith("PAGEMILL_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
