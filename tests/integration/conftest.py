"""Fixtures for integration tests: a migrated database of each kind, reached the way a process reaches it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pagemill import db
from pagemill.migrate import upgrade_to_head
from pagemill.settings import get_settings
from tests.support.engines import forget_engine


def _forget_database() -> None:
    """Close this process's engine and forget the settings it was made from."""
    forget_engine()
    get_settings.cache_clear()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of the given kind (one per test module), configured through PAGEMILL_* like a
    real process; yields "sqlite" or "postgres"."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("PAGEMILL_"):
                mp.delenv(name)
        module = request.module.__name__.rsplit(".", 1)[-1]
        mp.setenv("PAGEMILL_DATA_DIR", str(tmp_path_factory.mktemp(f"{module}-{request.param}")))
        if request.param == "postgres":
            mp.setenv("PAGEMILL_DATABASE__URL", request.getfixturevalue("pg_url"))
        _forget_database()
        upgrade_to_head()
        assert db.get_engine().dialect.name == ("sqlite" if request.param == "sqlite" else "postgresql")
        try:
            yield request.param
        finally:
            _forget_database()
