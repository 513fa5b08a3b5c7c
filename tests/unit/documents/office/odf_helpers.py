"""Helpers shared by the OpenDocument reader tests: the default limits and the code of a raised error."""

from __future__ import annotations

import pytest

from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()


def _code(exc: pytest.ExceptionInfo[PagemillError]) -> str:
    return exc.value.code
