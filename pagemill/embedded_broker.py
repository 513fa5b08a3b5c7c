"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, cheap to poll and bounded on disk.

kombu's transport polls each queue a worker consumes with two ORM queries inside a write lock (``BEGIN
IMMEDIATE``), and keeps every message it ever delivered, marked invisible. An idle embedded worker spent a
tenth of a core on it, every poll took the lock the API needs to publish, and the file grew with every
task ever sent. This transport changes these things and nothing else of kombu's:

* Before it queries a queue it asks SQLite, on a read-only connection of its own, whether anything was
  committed to the file since it last found that queue empty (``PRAGMA data_version``: microseconds, no
  lock). Only then does it query. So it can poll every :data:`POLLING_INTERVAL_S`, which is how long a task
  waits at most for an idle worker to notice it.
* A message is deleted when it is delivered instead of marked invisible (nothing reads an invisible one
  again: a worker that dies with a task is covered by the sweeper, which sends the work again), and the
  invisible ones an earlier version left are deleted once.
* A message is published with one ``INSERT`` (0.6 ms against kombu's 2 ms of ORM query, object and flush).
* A wait for messages ends as soon as the worker is asked to stop. Celery's loop for polling transports
  waits up to 2 s for messages before it looks at a SIGTERM, so an idle ``pagemill up`` took 4-6 s to stop.

Other databases behind ``sqla+`` URLs get kombu's transport unchanged.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from queue import Empty
from typing import Any, Final

from celery.worker import state as worker_state
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

POLLING_INTERVAL_S: Final = 0.02
"""How often an idle worker looks for a message: kombu's default is 1 s, and each hop of a job (ingest,
each page task) waits for it."""


class Channel(kombu_sqlalchemy.Channel):
    """kombu's SQLAlchemy channel, checking SQLite's data version before a query and deleting on delivery."""

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)  # type: ignore[no-untyped-call]  # kombu: few type hints
        self._watch: sqlite3.Connection | None = None
        self._empty_at: dict[str, int] = {}
        self._queue_ids: dict[str, int] = {}
        self._swept = False
        self._watch_lock = threading.Lock()

    def _get(self, queue: str, timeout: Any = None) -> Any:
        if self.session.bind.name != "sqlite":
            return super()._get(queue)  # type: ignore[no-untyped-call]
        version = self._data_version()
        if self._empty_at.get(queue) == version:
            raise Empty()
        try:
            return self._take(queue)
        except Empty:
            # Read before the query: a message committed after that read changes the version again.
            self._empty_at[queue] = version
            raise

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # kombu's two bases differ
        if self.session.bind.name != "sqlite":
            return super()._put(queue, payload, **kwargs)  # type: ignore[no-untyped-call]
        # One INSERT (the queue's id known after its first message) instead of kombu's ORM query, object and
        # flush: a 1,000-page job publishes 16 page tasks while its first pages wait.
        insert = self.message_cls.__table__.insert()
        body = dumps(payload)  # type: ignore[no-untyped-call]  # kombu: few type hints
        try:
            self.session.execute(insert.values(queue_id=self._queue_id(queue), payload=body))
            self.session.commit()
        except OperationalError:
            # As kombu's own: the publish fails (and can be retried) rather than report a message not stored.
            self.session.rollback()
            raise

    def _queue_id(self, queue: str) -> int:
        queue_id = self._queue_ids.get(queue)
        if queue_id is None:
            queue_id = self._queue_ids[queue] = int(self._get_or_create(queue).id)  # type: ignore[no-untyped-call]
        return queue_id

    def _data_version(self) -> int:
        """SQLite's counter of commits to the file by other connections (this one never writes)."""
        with self._watch_lock:
            if self._watch is None:
                path = self.session.bind.url.database
                # Autocommit: it never holds a read transaction open (WAL would keep it on an old snapshot).
                self._watch = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            row = self._watch.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _take(self, queue: str) -> Any:
        """The oldest message on ``queue``, deleted in the same transaction; Empty when there is none."""
        if not self._swept:
            self._sweep_invisible()
        queue_id = self._queue_id(queue)
        message_cls = self.message_cls
        self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            message = (
                self.session.query(message_cls)
                .filter(message_cls.queue_id == queue_id)
                .filter(message_cls.visible != False)  # noqa: E712  # SQL, as kombu writes it
                .order_by(message_cls.sent_at, message_cls.id)
                .limit(1)
                .first()
            )
            if message is None:
                raise Empty()
            payload = message.payload
            self.session.delete(message)
            return loads(bytes_to_str(payload))  # type: ignore[no-untyped-call]
        finally:
            self.session.commit()

    def _sweep_invisible(self) -> None:
        """Delete the delivered messages kombu's own transport kept (a data folder of an earlier version)."""
        message_cls = self.message_cls
        self.session.query(message_cls).filter(message_cls.visible == False).delete(  # noqa: E712
            synchronize_session=False
        )
        self.session.commit()
        self._swept = True

    def close(self) -> None:
        """Close kombu's channel and the data-version connection."""
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None
        super().close()  # type: ignore[no-untyped-call]


_STOP_CHECK_S: Final = 0.1
"""How often a wait for messages looks whether the worker was asked to stop."""


def _stop_requested() -> bool:
    """Whether this process is a Celery worker that was told to stop (warm or cold)."""
    # As celery.worker.state.maybe_shutdown reads them: a warm stop's flag is its exit code, often 0.
    return any(
        flag is not None and flag is not False
        for flag in (worker_state.should_stop, worker_state.should_terminate)
    )


class Transport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport with :class:`Channel`, polling every :data:`POLLING_INTERVAL_S`, whose
    waits end when the worker is asked to stop."""

    Channel = Channel
    polling_interval = POLLING_INTERVAL_S

    def drain_events(self, connection: Any, timeout: Any = None, **_: Any) -> Any:
        """Deliver the next message; TimeoutError after ``timeout`` seconds, or sooner when the worker is
        asked to stop (its loop then sees the request at once, not after the rest of its 2 s wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _STOP_CHECK_S
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))  # 0: kombu looks once
            try:
                super().drain_events(connection, timeout=wait)  # type: ignore[no-untyped-call]
                return
            except TimeoutError:
                if _stop_requested() or (deadline is not None and time.monotonic() >= deadline):
                    raise


def install() -> None:
    """Make ``sqla+`` broker URLs use :class:`Transport` (kombu picks the class by the URL's prefix)."""
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
