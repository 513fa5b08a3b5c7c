"""Counting jobs, task waits and webhook outcomes as they happen, once their transaction has committed.

A count taken inside a transaction that then rolls back (an Idempotency-Key race, a fenced write that lost)
would count something that did not happen, so each is held in the session until it commits and dropped on
rollback, as messages are (pagemill.queue.enqueue_after_commit).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from pagemill.metrics import JOB_DURATION, JOBS_COMPLETED, JOBS_SUBMITTED, QUEUE_WAIT, WEBHOOK_DELIVERIES
from pagemill.models import JobState
from pagemill.observability import repository as repo

UNKNOWN_KIND = "unknown"
"""The kind label of a job whose document is not known (a URL job not fetched yet, or whose fetch failed)."""
SENT_AT_HEADER = "pagemill_sent_at"
"""The message header with the time (epoch seconds) a task was published: its queue wait starts there."""

_PENDING = "pagemill_pending_counts"


def after_commit(session: Session, count: Callable[[], None]) -> None:
    """Run ``count`` once ``session`` commits; drop it if the session rolls back."""
    if not session.info.get("pagemill_counting"):
        # Listeners stay for the session's life (see pagemill.queue.enqueue_after_commit for why).
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_rollback", _drop_pending)
        session.info["pagemill_counting"] = True
    session.info.setdefault(_PENDING, []).append(count)


def _run_pending(session: Session) -> None:
    for count in session.info.pop(_PENDING, []):
        count()


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def count_submitted(session: Session, kind: str | None) -> None:
    """A job of ``kind`` was accepted (counted at commit)."""
    label = kind or UNKNOWN_KIND
    after_commit(session, lambda: JOBS_SUBMITTED.labels(kind=label).inc())


def count_ended(session: Session, job_id: str, state: JobState) -> None:
    """Job ``job_id`` moved to the final ``state`` in this transaction: count it, and (unless it expired,
    long after it ended) observe how long it took from submission."""
    timing = repo.job_timing(session, job_id)
    if timing is None:
        return
    kind = timing.kind or UNKNOWN_KIND
    duration = job_seconds(timing.created_at, timing.finished_at) if state != JobState.EXPIRED else None

    def count() -> None:
        JOBS_COMPLETED.labels(kind=kind, outcome=state.value).inc()
        if duration is not None:
            JOB_DURATION.labels(kind=kind).observe(duration)

    after_commit(session, count)


def job_seconds(created_at: datetime, finished_at: datetime | None) -> float | None:
    """Seconds from submission to end; None while the job has not ended."""
    if finished_at is None:
        return None
    return max(0.0, (finished_at - created_at).total_seconds())


def count_webhook_attempt(session: Session, state: str) -> None:
    """An attempt left its delivery ``state`` (succeeded, failed or dead): counted at commit."""
    after_commit(session, lambda: WEBHOOK_DELIVERIES.labels(outcome=state).inc())


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Celery's ``before_task_publish`` receiver: stamp each message with the time it is sent."""
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def queue_wait_s(request: Any, now: float) -> tuple[str, float] | None:
    """The queue and seconds a task's message waited before a worker started it, from the task's request
    (Celery's ``task.request`` or a dict: its headers and delivery info): from its publication, or from the
    end of its countdown (``eta``) if it had one. None for a message without the stamp (sent by an older
    release) or from no known queue."""
    sent_at = request.get(SENT_AT_HEADER)
    queue = (request.get("delivery_info") or {}).get("routing_key")
    if not isinstance(sent_at, int | float) or not queue:
        return None
    start = float(sent_at)
    eta = request.get("eta")
    if isinstance(eta, str):
        with contextlib.suppress(ValueError):  # not a time: counted from the publication
            start = max(start, datetime.fromisoformat(eta).timestamp())
    return str(queue), max(0.0, now - start)


def observe_queue_wait(request: Any) -> None:
    """Observe a starting task's queue wait (see :func:`queue_wait_s`)."""
    waited = queue_wait_s(request, time.time())
    if waited is not None:
        QUEUE_WAIT.labels(queue=waited[0]).observe(waited[1])
