"""Un-wedge a prefork pool whose input lock died with a killed pool process (embedded broker only).

With a broker that has no event loop (kombu's SQLAlchemy transport: embedded mode), Celery runs billiard's
plain Pool: every pool process reads tasks from one shared pipe under one shared lock, and an idle process
waits for a task while holding it. A pool process killed while it waits (SIGKILL, the kernel's OOM killer)
never gives the lock back: the processes started in its place block on it forever, and the worker takes
no work again, silently. (Redis brings an event loop and billiard's AsynPool, a pipe per process: no
shared lock.) The lock is an unowned semaphore, so the main process can give it back.

The watchdog looks every second: tasks handed to the pool but not started by any process for
``WEDGED_AFTER_S`` while the pool's processes were replaced in the meantime is that wedge; it releases the
lock once, logs it, and watches again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.worker import state

log = logging.getLogger(__name__)

WEDGED_AFTER_S = 15.0
_stop = threading.Event()


def start(consumer: Any) -> bool:
    """Watch ``consumer``'s pool if it is a plain (not event-loop) billiard pool; whether it does."""
    pool = getattr(getattr(consumer, "pool", None), "_pool", None)
    inqueue = getattr(pool, "_inqueue", None)
    if pool is None or inqueue is None or getattr(consumer.controller, "use_eventloop", True):
        return False
    threading.Thread(target=_watch, args=(pool,), name="pagemill-pool-watchdog", daemon=True).start()
    return True


def stop() -> None:
    """Stop watching (worker shutdown)."""
    _stop.set()


def _pids(pool: Any) -> frozenset[int]:
    return frozenset(process.pid for process in list(getattr(pool, "_pool", [])) if process.pid)


def _watch(pool: Any) -> None:
    waiting_since: float | None = None
    pids_then = _pids(pool)
    while not _stop.wait(1.0):
        waiting = len(state.reserved_requests) > 0 and len(state.active_requests) == 0
        if not waiting:
            waiting_since, pids_then = None, _pids(pool)
            continue
        if waiting_since is None:
            waiting_since = time.monotonic()
        replaced = _pids(pool) != pids_then
        if replaced and time.monotonic() - waiting_since >= WEDGED_AFTER_S:
            unwedge(pool)
            waiting_since, pids_then = None, _pids(pool)


def unwedge(pool: Any) -> bool:
    """Give back the pool's input lock held by a dead process; whether it was held."""
    try:
        pool._inqueue._rlock.release()
    except ValueError:  # not held: whatever stops the pool, it is not this
        log.warning("pool processes take no task, but their input lock is free")
        return False
    log.error(
        "a pool process was killed holding the pool's input lock, and no task could start since; "
        "the lock was given back"
    )
    return True
