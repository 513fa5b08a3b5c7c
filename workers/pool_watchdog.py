"""Heal a prefork pool that killed pool processes left unable to work (embedded broker only).

With a broker that has no event loop (kombu's SQLAlchemy transport: embedded mode), Celery runs billiard's
plain Pool, and a pool process killed at the wrong moment (SIGKILL, the kernel's OOM killer) can stop the
worker for good, silently:

* every pool process reads tasks from one shared pipe under one shared lock, and an idle process waits
  for a task while holding it: killed then, it never gives the lock back, and the processes started in its
  place block on it for ever;
* a task whose process was killed just as it started is not always marked lost: it stays "active" and
  keeps its message's prefetch slot, so with every slot taken the worker fetches nothing more.

(Redis brings an event loop and billiard's AsynPool, a pipe per process: neither happens there.)

The watchdog looks every second. The pool is stuck when, for ``STUCK_AFTER_S``, no task started, work
was waiting (handed to the pool, or on this worker's queues in the broker), no task was running in a live
process, and the pool's processes were replaced since the last start. When a task waits in the pipe it
first gives back the shared lock (an unowned semaphore: the main process can release it); if the pool is
still stuck one period later (or the work waits in the broker behind dead tasks' prefetch slots), it kills
the pool and exits with ``EXIT_STUCK``, for its supervisor (``pagemill up``, Docker, Kubernetes) to start a
fresh worker. Pages are claimed in the database, so nothing is lost by the exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery.worker import state

from pagemill.jobs.claims import process_alive

log = logging.getLogger(__name__)

STUCK_AFTER_S = 15.0
EXIT_STUCK = 75
_stop = threading.Event()


def start(consumer: Any) -> bool:
    """Watch ``consumer``'s pool if it is a plain (not event-loop) billiard pool; whether it does."""
    pool = getattr(getattr(consumer, "pool", None), "_pool", None)
    if pool is None or getattr(pool, "_inqueue", None) is None:
        return False
    if getattr(consumer.controller, "use_eventloop", True):
        return False
    names = [queue.name for queue in getattr(consumer.task_consumer, "queues", [])]
    threading.Thread(
        target=watch, args=(pool, lambda: _broker_has_work(names)), name="pagemill-pool-watchdog", daemon=True
    ).start()
    return True


def stop() -> None:
    """Stop watching (worker shutdown)."""
    _stop.set()


def _broker_has_work(queue_names: Sequence[str]) -> bool:
    from pagemill.queue import waiting_messages

    return any((waiting_messages(name) or 0) > 0 for name in queue_names)


def _pids(pool: Any) -> frozenset[int]:
    return frozenset(process.pid for process in list(getattr(pool, "_pool", [])) if process.pid)


def _starts() -> int:
    """Tasks started by pool processes so far. Only starts count as the pool working: a killed process's
    task being reported lost is no sign that the new processes can take work."""
    return sum(state.total_count.values())


def _running_somewhere() -> bool:
    """Whether an active task runs in a live pool process (a long page, not a ghost of a killed one)."""
    pids = [getattr(request, "worker_pid", None) for request in list(state.active_requests)]
    return any(pid and process_alive(pid) for pid in pids)


def _handed_waiting() -> bool:
    """Whether a task was handed to the pool and no pool process has started it."""
    active = set(state.active_requests)
    return any(request not in active for request in list(state.reserved_requests))


def watch(pool: Any, broker_has_work: Callable[[], bool], *, stuck_after_s: float = STUCK_AFTER_S) -> None:
    """The watchdog's loop (see the module docstring)."""
    progress, since, pids_then, released = _starts(), time.monotonic(), _pids(pool), False
    while not _stop.wait(1.0):
        now = time.monotonic()
        current = _starts()
        if current != progress or _running_somewhere():
            progress, since, pids_then, released = current, now, _pids(pool), False
            continue
        if now - since < stuck_after_s or _pids(pool) == pids_then:
            continue
        handed = _handed_waiting()
        if not handed and not broker_has_work():
            since = now
            continue
        if handed and not released:
            # A task waits in the pipe and no live process took it: no live process holds the lock (an
            # idle one holding it would have read the task), so giving it back cannot let two read at once.
            release_input_lock(pool)
            since, released = now, True
            continue
        log.error(
            "the worker's pool has taken no task for %.0f s after pool processes were killed, with work "
            "waiting; exiting (code %d) for a fresh worker to be started",
            now - since + stuck_after_s,
            EXIT_STUCK,
        )
        for pid in _pids(pool):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os._exit(EXIT_STUCK)


def release_input_lock(pool: Any) -> bool:
    """Give back the pool's input lock if it is held (by a dead process: nothing is running); whether
    it was held."""
    try:
        pool._inqueue._rlock.release()
    except ValueError:  # not held
        log.warning("the pool takes no task, though its input lock is free")
        return False
    log.error("a pool process was killed holding the pool's input lock; the lock was given back")
    return True
