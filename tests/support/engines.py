"""Dropping this process's database engine between tests without leaving open connections behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from pagemill import db


def _close_returned(dbapi_connection: Any, _record: Any) -> None:
    if dbapi_connection is not None:
        dbapi_connection.close()


def forget_engine() -> None:
    """Close this process's engine and forget it: the next use makes a new one from PAGEMILL_* again.

    ``dispose()`` closes the connections in the pool, not one checked out at that moment (by a thread still
    at work); that one goes back to the old pool afterwards, which nothing uses or closes, and psycopg warns
    when the garbage collector takes it, in whatever test runs then. So every connection returned to the
    forgotten engine (its old pool, or the new one ``dispose`` makes) is closed on the way in.
    """
    if db.get_engine.cache_info().currsize:
        engine = db.get_engine()
        event.listen(engine.pool, "checkin", _close_returned)  # moves to the pool dispose() makes
        engine.dispose()
    db.reset_engine()
