"""The round trips the API saves on Postgres keep their guarantees: a pooled connection that died while
idle is replaced without an error (pinged after ``PING_AFTER_IDLE_S``), one used a moment ago is not
pinged, and ``autocommit_scope`` commits each statement by itself (on SQLite it is ``session_scope``)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text

from pagemill import db
from pagemill.models import Tenant
from pagemill.tenancy import repository as tenancy_repo

pytestmark = pytest.mark.integration


# Pinging is a Postgres matter: SQLite connections are files, and its engine installs no ping at all.
POSTGRES_ONLY = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@POSTGRES_ONLY
def test_a_connection_that_died_while_idle_is_replaced_without_an_error(database: str) -> None:
    with db.get_engine().connect() as other:
        with db.session_scope() as session:
            victim = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The victim is back in the pool (first in line); another connection ends it, as a Postgres
        # restart or a server-side idle timeout would.
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        other.commit()
    time.sleep(db.PING_AFTER_IDLE_S + 0.2)
    with db.session_scope() as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != victim


@POSTGRES_ONLY
def test_a_connection_used_a_moment_ago_is_not_pinged(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []

    def ping(connection: object) -> bool:
        pings.append(connection)
        return True

    monkeypatch.setattr(db.get_engine().dialect, "do_ping", ping)
    with db.session_scope() as session:
        session.execute(select(1))
    with db.session_scope() as session:  # handed back a moment ago: used as it is
        session.execute(select(1))
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    with db.session_scope() as session:
        session.execute(select(1))
    assert len(pings) == 1  # idle for longer than the (now zero) threshold: pinged


def test_autocommit_scope_commits_each_statement(database: str) -> None:
    with db.autocommit_scope() as session:
        tenancy_repo.ensure_tenant(session, "autocommit-1", "standard")
        # Visible to another connection before the scope ends: committed by the statement itself.
        with db.session_scope() as other:
            found = other.get(Tenant, "autocommit-1")
            assert (found is not None) == (database == "postgres")
    with db.session_scope() as session:
        assert session.get(Tenant, "autocommit-1") is not None
