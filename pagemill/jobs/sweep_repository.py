"""The sweeper's queries on jobs: jobs still queued, stalled ones and overdue ones, each claimed by touching
it so that of two sweepers one wins. SQL only; pagemill.jobs.sweeper decides what to do with them."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from pagemill.jobs.repository import ACTIVE_STATES
from pagemill.models import Job, JobState
from pagemill.models.base import utcnow


def queued_jobs(session: Session, *, created_before: datetime, limit: int = 100) -> list[tuple[str, int]]:
    """(id, priority) of jobs still queued (not yet opened by a worker) since before ``created_before``."""
    rows = session.execute(
        select(Job.id, Job.priority)
        .where(Job.state == JobState.QUEUED, Job.created_at < created_before, Job.cancel_requested.is_(False))
        .order_by(Job.created_at)
        .limit(limit)
    ).all()
    return [(str(job_id), int(priority)) for job_id, priority in rows]


class StalledJob(NamedTuple):
    """An active job the sweeper claimed: its id, priority and re-enqueues in a row without progress
    (this claim included)."""

    id: str
    priority: int
    requeues: int


def claim_stalled_jobs(session: Session, *, older_than: datetime, limit: int = 100) -> list[StalledJob]:
    """Active jobs with no progress since ``older_than``, oldest first, each claimed by touching it and
    counting one more re-enqueue (one sweeper wins: the update is fenced on the ``updated_at`` it saw)."""
    candidates = session.execute(
        select(Job.id, Job.updated_at, Job.priority)
        .where(Job.state.in_(ACTIVE_STATES), Job.updated_at < older_than)
        .order_by(Job.updated_at)
        .limit(limit)
    ).all()
    claimed: list[StalledJob] = []
    for job_id, updated_at, priority in candidates:
        row = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.updated_at == updated_at, Job.state.in_(ACTIVE_STATES))
            .values(updated_at=utcnow(), requeues=Job.requeues + 1)
            .returning(Job.requeues)
        ).first()
        if row is not None:
            claimed.append(StalledJob(str(job_id), int(priority), int(row[0])))
    return claimed


def claim_overdue_jobs(
    session: Session, *, cancelled_before: datetime, created_before: datetime, limit: int = 100
) -> list[tuple[str, bool]]:
    """Active jobs to end now, each claimed by touching it: (id, cancel_requested). Those cancelled with no
    progress since ``cancelled_before`` (no worker is stopping them) and those submitted before
    ``created_before`` (past the deadline)."""
    candidates = session.execute(
        select(Job.id, Job.updated_at, Job.cancel_requested)
        .where(
            Job.state.in_(ACTIVE_STATES),
            or_(
                and_(Job.cancel_requested.is_(True), Job.updated_at < cancelled_before),
                Job.created_at < created_before,
            ),
        )
        .order_by(Job.updated_at)
        .limit(limit)
    ).all()
    claimed: list[tuple[str, bool]] = []
    for job_id, updated_at, cancel in candidates:
        result = session.execute(
            update(Job).where(Job.id == job_id, Job.updated_at == updated_at).values(updated_at=utcnow())
        )
        if result.rowcount:  # type: ignore[attr-defined]
            claimed.append((str(job_id), bool(cancel)))
    return claimed
