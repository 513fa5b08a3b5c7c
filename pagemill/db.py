"""Database engines and sessions, made per process (after a Celery fork), never at import time."""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Self

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from pagemill.engines.capacity import requests_in_flight
from pagemill.errors import DependencyUnavailable
from pagemill.settings import Settings, get_settings

# SQLite has one writer at a time. Threads of one process that all try to write would each spin in SQLite's
# busy handler (sleeps of up to 100 ms, no order), so 50 API threads took seconds to get through a lock held
# for a millisecond at a time, and a few ran out of busy_timeout ("database is locked"). Instead a thread
# takes this process-wide lock before its transaction's first write and gives it back when the transaction
# ends: writers of one process queue here, and only writers of other processes (workers) meet the busy
# handler. Reads never take it (WAL lets them run beside the writer).
_writer_lock = threading.Lock()
# pysqlite opens a transaction (BEGIN) before exactly these statements; a write transaction starts there.
_OPENS_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def _new_writer_lock() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    global _writer_lock
    _writer_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_writer_lock)


class _OneWriterConnection(sqlite3.Connection):
    """A pysqlite connection that holds the process's writer lock from its first write to commit/rollback."""

    writer_wait_s: float = 30.0
    _held: threading.Lock | None = None

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:  # type: ignore[override]
        """Cursors that take the writer lock before a statement that opens a write transaction."""
        return super().cursor(factory or _OneWriterCursor)

    def take_writer_lock(self, statement: str) -> None:
        """Wait (at most ``writer_wait_s``) for the writer lock if ``statement`` opens a write transaction."""
        if self._held is not None or self.in_transaction or not _OPENS_WRITE.match(statement):
            return
        lock = _writer_lock
        if not lock.acquire(timeout=self.writer_wait_s):
            busy = "The database is busy; retry after Retry-After seconds."
            raise DependencyUnavailable(busy, retry_after_s=2)
        self._held = lock

    def _give_back(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def commit(self) -> None:
        """Commit, then let the next writer in."""
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._give_back()

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        """Close (a transaction still open is rolled back by SQLite), then let the next writer in."""
        try:
            super().close()
        finally:
            self._give_back()


class _OneWriterCursor(sqlite3.Cursor):
    connection: _OneWriterConnection

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        """Execute, first taking the writer lock if this statement starts a write transaction."""
        self.connection.take_writer_lock(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Self:
        """Execute for each parameter set, first taking the writer lock if needed."""
        self.connection.take_writer_lock(sql)
        return super().executemany(sql, seq_of_parameters)


def _sqlite_connection_factory(wait_s: float) -> type[_OneWriterConnection]:
    return type("OneWriterConnection", (_OneWriterConnection,), {"writer_wait_s": wait_s})


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets the API read while a worker writes; busy_timeout makes writers of other processes queue
        # instead of failing with "database is locked" when several of them commit at once.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


def pool_capacity(settings: Settings) -> int:
    """Connections one process may open: enough for every API request in flight (each holds at most one,
    briefly) and for every page thread of a GPU worker, so that a thread never waits for a connection
    while another request holds one for nothing."""
    return max(
        settings.database.pool_size + 10,
        settings.api.max_concurrent_requests,
        requests_in_flight(settings.engines.vllm),
    )


def make_engine(settings: Settings) -> Engine:
    """Create an engine for the configured database (SQLite gets WAL and a busy timeout)."""
    url = settings.database_url
    capacity = pool_capacity(settings)
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        busy_s = settings.database.sqlite_busy_timeout_s
        engine = create_engine(
            url,
            # SQLite connections are file handles: keep one per thread that may use one.
            pool_size=capacity,
            max_overflow=0,
            pool_timeout=settings.database.pool_timeout_s,
            connect_args={
                "timeout": busy_s,
                "check_same_thread": False,
                "factory": _sqlite_connection_factory(busy_s),
            },
        )
        event.listen(engine, "connect", _sqlite_pragmas(int(busy_s * 1000)))
        return engine
    engine = create_engine(
        url,
        pool_size=settings.database.pool_size,
        # Overflow connections (API bursts, a GPU worker's page threads) close again when handed back.
        max_overflow=capacity - settings.database.pool_size,
        pool_timeout=settings.database.pool_timeout_s,
        connect_args={"connect_timeout": settings.database.connect_timeout_s, **_postgres_options(settings)},
    )
    _ping_when_idle(engine)
    return engine


def _postgres_options(settings: Settings) -> dict[str, str]:
    """The session limits sent when connecting (libpq's ``options``): none when both are 0."""
    limits = {
        "statement_timeout": settings.database.statement_timeout_s,
        "idle_in_transaction_session_timeout": settings.database.idle_in_transaction_timeout_s,
    }
    options = " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in limits.items() if seconds)
    return {"options": options} if options else {}


# A connection handed back less than this long ago is used without a ping: it was fine a moment ago.
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "pagemill_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only if it sat idle for ``PING_AFTER_IDLE_S`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip to Postgres per transaction (two
    per API request: the key lookup and the route's own), under load a fifth of a status read's database
    time. A connection that was in use within the last second is as good as a pinged one; one that sat
    idle (across a Postgres restart, say) is pinged, and a failed ping invalidates the pool and reconnects
    as ``pool_pre_ping`` does, so a restart still costs no request an error.
    """

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # a new connection, or one used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this and every older connection and checks out a new one.
            raise InvalidatePoolError(f"ping after idle failed: {exc}") from exc

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


@functools.cache
def get_engine() -> Engine:
    """The process-wide engine, created on first use."""
    return make_engine(get_settings())


@functools.cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def reset_engine() -> None:
    """Forget this process's engine (call in a freshly forked child so it opens its own connections)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)
    get_engine.cache_clear()
    _session_factory.cache_clear()
    _autocommit_factory.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits once at the end, or rolls back on error. Services never commit.

    DependencyUnavailable (503 + Retry-After) when no pooled connection is free within
    ``database.pool_timeout_s``.
    """
    with _scope(_session_factory()) as session:
        yield session


@contextmanager
def _scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session of ``factory``: committed at the end, rolled back on error, a full pool a 503."""
    session = factory()
    try:
        yield session
        session.commit()
    except PoolTimeout as exc:
        session.rollback()
        raise DependencyUnavailable(
            "No database connection is free; retry after Retry-After seconds.", retry_after_s=1
        ) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@functools.cache
def _autocommit_factory() -> sessionmaker[Session]:
    return sessionmaker(
        bind=get_engine().execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


@contextmanager
def autocommit_scope() -> Iterator[Session]:
    """A session for a lookup of a statement or two that needs no transaction (the API key check).

    On Postgres each statement commits by itself (AUTOCOMMIT): no BEGIN and no COMMIT, two round trips of
    three saved on every request. On SQLite it is :func:`session_scope` (pysqlite opens no transaction for
    a read anyway, and a write must end in a commit that gives back the writer lock).
    """
    if get_engine().dialect.name == "sqlite":
        with session_scope() as session:
            yield session
        return
    with _scope(_autocommit_factory()) as session:
        yield session


SessionScope = Callable[[], AbstractContextManager[Session]]
"""Opens a :func:`session_scope`: services that must keep a transaction short open their own."""
