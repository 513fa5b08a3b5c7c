"""All SQL of live progress: a job's pages as they finish, and the counts behind its ETA.

Each ETA question is one aggregate over an index: a job's own pending pages (the pages primary key), the
unclaimed pages waiting on a queue (``ix_pages_queue_state_claim``, index-only) and what a queue's pool
finished lately (``ix_pages_queue_finished_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pagemill.models import Job, JobState, Page, PageState

ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
READ_STATES = (PageState.DONE, PageState.FAILED)


class WaitingJob(NamedTuple):
    """An active job with unclaimed pending pages on a queue, and how many."""

    job_id: str
    tenant_id: str
    priority: int
    created_at: datetime
    pages: int


class QueueThroughput(NamedTuple):
    """Pages a queue's pool finished since a time, and when the first of them was finished."""

    queue: str
    pages: int
    first_finished_at: datetime


def pages_after(session: Session, job_id: str, after_index: int, limit: int) -> Sequence[Page]:
    """Up to ``limit`` of the job's pages with an index above ``after_index``, in page order (any state)."""
    return session.scalars(
        select(Page).where(Page.job_id == job_id, Page.index > after_index).order_by(Page.index).limit(limit)
    ).all()


def pending_by_queue(session: Session, job_id: str) -> dict[str, int]:
    """The job's pending pages (claimed or not) per queue."""
    rows = session.execute(
        select(Page.queue, func.count())
        .where(Page.job_id == job_id, Page.state == PageState.PENDING)
        .group_by(Page.queue)
    ).all()
    return {str(queue or ""): int(count) for queue, count in rows}


def waiting_jobs(session: Session, queue: str) -> list[WaitingJob]:
    """Every active job with unclaimed pending pages on ``queue``, with their count: what the scheduler
    will hand out there (pages being read now are not waiting). One index-only pass over the queue's
    waiting pages, grouped by job, then the jobs' rows."""
    waiting = (
        select(Page.job_id, func.count().label("pages"))
        .where(Page.queue == queue, Page.state == PageState.PENDING, Page.claim_id.is_(None))
        .group_by(Page.job_id)
        .subquery()
    )
    rows = session.execute(
        select(Job.id, Job.tenant_id, Job.priority, Job.created_at, waiting.c.pages)
        .join(waiting, waiting.c.job_id == Job.id)
        .where(Job.state.in_(ACTIVE_STATES))
    ).all()
    return [
        WaitingJob(str(job_id), str(tenant), int(priority), created_at, int(pages))
        for job_id, tenant, priority, created_at, pages in rows
    ]


def finished_since(session: Session, queue: str, since: datetime) -> QueueThroughput | None:
    """The pages ``queue``'s pool read (done, or failed after a worker tried them) since ``since``; None
    when it read none.

    Pages failed without an attempt (a job given up by the sweeper) and skipped pages (a cancel) cost the
    pool nothing and are left out."""
    row = session.execute(
        select(func.count(), func.min(Page.finished_at)).where(
            Page.queue == queue,
            Page.finished_at >= since,
            Page.state.in_(READ_STATES),
            Page.attempts > 0,
        )
    ).one()
    count, first = row
    return QueueThroughput(queue, int(count), first) if count and first is not None else None
