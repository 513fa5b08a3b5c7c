"""Postgres session limits (database.statement_timeout_s, database.idle_in_transaction_timeout_s): a stuck
statement is cancelled, a transaction left idle is closed by the server, 0 sends no limit, and migrations
run without the statement limit."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from pagemill import db
from pagemill.db import make_engine
from pagemill.migrate import upgrade_to_head
from pagemill.settings import Settings, get_settings
from tests.integration.conftest import _forget_database
from tests.support import services

pytestmark = pytest.mark.integration


def postgres_settings(pg_url: str, **database: float) -> Settings:
    base = get_settings()
    return base.model_copy(update={"database": base.database.model_copy(update={"url": pg_url, **database})})


def test_a_statement_over_the_limit_is_cancelled_and_the_connection_serves_again(pg_url: str) -> None:
    engine = make_engine(postgres_settings(pg_url, statement_timeout_s=0.3))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "300ms"
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 3
            conn.rollback()
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_a_transaction_left_idle_is_closed_by_the_server(pg_url: str) -> None:
    engine = make_engine(postgres_settings(pg_url, idle_in_transaction_timeout_s=0.3))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # a transaction begins (SQLAlchemy's autobegin) and idles
            time.sleep(1.0)
            with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
                conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_zero_sends_no_limit(pg_url: str) -> None:
    engine = make_engine(postgres_settings(pg_url, statement_timeout_s=0, idle_in_transaction_timeout_s=0))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "0"
    finally:
        engine.dispose()


def test_the_defaults_are_sent(pg_url: str) -> None:
    settings = postgres_settings(pg_url)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "30s"
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "2min"
    finally:
        engine.dispose()


def test_migrations_run_without_the_statement_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit of 1 ms would cancel the schema's DDL; the migration session lifts it."""
    with services.postgres_url() as url:
        monkeypatch.setenv("PAGEMILL_DATABASE__URL", url)
        monkeypatch.setenv("PAGEMILL_DATABASE__STATEMENT_TIMEOUT_S", "0.001")
        _forget_database()
        try:
            # The limit is in force for everything else: on a busy machine even the driver's first queries
            # on a new connection (type lookups) overrun 1 ms, so the cancel may come from connecting.
            with (
                pytest.raises(OperationalError, match="statement timeout"),
                db.get_engine().connect() as conn,
            ):
                conn.execute(text("SELECT pg_sleep(0.1)"))
            upgrade_to_head()
            # Read the result without the limit (1 ms is too short to connect reliably, see above).
            monkeypatch.delenv("PAGEMILL_DATABASE__STATEMENT_TIMEOUT_S")
            _forget_database()
            with db.get_engine().connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            _forget_database()
