"""tests.support.engines.forget_engine: a connection checked out while the engine is forgotten is closed
when it is returned, so no open connection is left for the garbage collector (psycopg warns then)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pagemill import db
from pagemill.settings import get_settings
from tests.support.engines import forget_engine

pytestmark = pytest.mark.integration


def test_a_connection_returned_after_the_engine_is_forgotten_is_closed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGEMILL_DATABASE__URL", pg_url)
    get_settings.cache_clear()
    forget_engine()
    try:
        connection = db.get_engine().connect()
        connection.execute(text("SELECT 1"))
        raw = connection.connection.dbapi_connection
        assert raw is not None and not raw.closed
        forget_engine()  # while the connection is out
        connection.close()
        assert raw.closed
    finally:
        forget_engine()
        get_settings.cache_clear()
