"""All SQL of dead letters, and of putting a job's failed work back to be read again (a replay)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from pagemill.models import DeadLetter, DeadLetterState, Job, JobState, Page, PageState


@dataclass(frozen=True)
class JobFacts:
    """What recording or replaying a job's dead letters needs to know of the job (read under its lock)."""

    id: str
    tenant_id: str
    state: str
    priority: int
    attempts: int
    has_password: bool
    source_key: str
    sha256: str | None
    purged: bool
    source_deleted_at: datetime | None


def lock_job(session: Session, job_id: str) -> JobFacts | None:
    """The job's facts, its row locked until the transaction ends (Postgres; SQLite has one writer): two
    failures of one job, or a failure and a replay, are recorded one after the other. None if it is gone."""
    row = session.execute(
        select(
            Job.id,
            Job.tenant_id,
            Job.state,
            Job.priority,
            Job.attempts,
            Job.document_password_sealed.is_not(None),
            Job.source_key,
            Job.sha256,
            Job.purged,
            Job.source_deleted_at,
        )
        .where(Job.id == job_id)
        .with_for_update()
    ).first()
    if row is None:
        return None
    return JobFacts(
        id=row[0],
        tenant_id=row[1],
        state=row[2],
        priority=int(row[3]),
        attempts=int(row[4]),
        has_password=bool(row[5]),
        source_key=row[6],
        sha256=row[7],
        purged=bool(row[8]),
        source_deleted_at=row[9],
    )


@dataclass(frozen=True)
class FinishedPage:
    """A page as a dead letter records it: index, attempts, and the queue it was read from."""

    index: int
    attempts: int
    queue: str | None


def pages_finished_at(
    session: Session, job_id: str, indices: Sequence[int], at: datetime
) -> dict[int, FinishedPage]:
    """Those of ``indices`` finished at exactly ``at`` (by the statements of one save), by index."""
    rows = session.execute(
        select(Page.index, Page.attempts, Page.queue).where(
            Page.job_id == job_id, Page.index.in_(list(indices)), Page.finished_at == at
        )
    ).all()
    return {int(index): FinishedPage(int(index), int(attempts), queue) for index, attempts, queue in rows}


def find(session: Session, job_id: str, category: str, fingerprint: str) -> DeadLetter | None:
    """The job's dead letter of this category and fingerprint, if there is one."""
    return session.scalars(
        select(DeadLetter).where(
            DeadLetter.job_id == job_id,
            DeadLetter.category == category,
            DeadLetter.fingerprint == fingerprint,
        )
    ).first()


def add(session: Session, dead_letter: DeadLetter) -> None:
    """Insert a dead letter."""
    session.add(dead_letter)


def get(session: Session, dead_letter_id: str) -> DeadLetter | None:
    """A dead letter by id, or None."""
    return session.get(DeadLetter, dead_letter_id)


def _filters(
    *,
    state: str | None = None,
    category: str | None = None,
    tenant_id: str | None = None,
    job_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if state is not None:
        conditions.append(DeadLetter.state == state)
    if category is not None:
        conditions.append(DeadLetter.category == category)
    if tenant_id is not None:
        conditions.append(DeadLetter.tenant_id == tenant_id)
    if job_id is not None:
        conditions.append(DeadLetter.job_id == job_id)
    if since is not None:
        conditions.append(DeadLetter.failed_at >= since)
    if until is not None:
        conditions.append(DeadLetter.failed_at < until)
    return conditions


def list_dead_letters(
    session: Session,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
    **filters: Any,
) -> Sequence[DeadLetter]:
    """Dead letters, newest failure first, after a (failed_at, id) cursor; ``filters``: state, category,
    tenant_id, job_id, since and until (on the last failure's time)."""
    query = (
        select(DeadLetter)
        .where(*_filters(**filters))
        .order_by(DeadLetter.failed_at.desc(), DeadLetter.id.desc())
        .limit(limit)
    )
    if after is not None:
        failed_at, row_id = after
        query = query.where(
            or_(
                DeadLetter.failed_at < failed_at,
                and_(DeadLetter.failed_at == failed_at, DeadLetter.id < row_id),
            )
        )
    return session.scalars(query).all()


def open_dead_letters(
    session: Session, *, category: str, tenant_id: str | None, since: datetime | None, limit: int
) -> Sequence[DeadLetter]:
    """Open dead letters of ``category`` (of one tenant, failed since a time), oldest failure first."""
    return session.scalars(
        select(DeadLetter)
        .where(*_filters(state=DeadLetterState.OPEN, category=category, tenant_id=tenant_id, since=since))
        .order_by(DeadLetter.failed_at, DeadLetter.id)
        .limit(limit)
    ).all()


def count_open(session: Session, *, category: str, tenant_id: str | None, since: datetime | None) -> int:
    """How many open dead letters of ``category`` (of one tenant, failed since a time) there are."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(DeadLetter)
            .where(*_filters(state=DeadLetterState.OPEN, category=category, tenant_id=tenant_id, since=since))
        )
        or 0
    )


def open_counts(session: Session) -> dict[str, int]:
    """Open dead letters per category, leaving out those of expired jobs (their work cannot run again)."""
    rows = session.execute(
        select(DeadLetter.category, func.count())
        .join(Job, Job.id == DeadLetter.job_id)
        .where(DeadLetter.state == DeadLetterState.OPEN, Job.state != JobState.EXPIRED)
        .group_by(DeadLetter.category)
    ).all()
    return {str(category): int(count) for category, count in rows}


def pages_shared(session: Session, job_id: str) -> bool:
    """Whether cached jobs read this job's page rows (pagemill.jobs.cache): those must not change."""
    return bool(session.scalar(select(exists().where(Job.pages_from == job_id))))


def reset_pages(session: Session, job_id: str, indices: Sequence[int]) -> int:
    """Put these failed pages back to pending with fresh attempts, their error and claim cleared (they are
    routed to a queue again by the ingest task); how many."""
    if not indices:
        return 0
    result = session.execute(
        update(Page)
        .where(Page.job_id == job_id, Page.index.in_(list(indices)), Page.state == PageState.FAILED)
        .values(
            state=PageState.PENDING,
            attempts=0,
            deferrals=0,
            not_before=None,
            error_code=None,
            error_message=None,
            finished_at=None,
            claim_id=None,
            claimed_by=None,
            claim_expires_at=None,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reopen_job(session: Session, job_id: str, now: datetime) -> bool:
    """Move an ended (failed or succeeded) job back to running with fresh attempts and no error: the ingest
    task then re-plans or re-sends its pending pages. False if it is in another state."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_((JobState.FAILED, JobState.SUCCEEDED)))
        .values(
            state=JobState.RUNNING,
            attempts=0,
            requeues=0,
            error_code=None,
            error_message=None,
            error_details=None,
            finished_at=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_replayed(session: Session, ids: Sequence[str], *, now: datetime, by: str) -> None:
    """Mark these dead letters replayed (by whom, when) and count the replay."""
    session.execute(
        update(DeadLetter)
        .where(DeadLetter.id.in_(list(ids)))
        .values(
            state=DeadLetterState.REPLAYED,
            replayed_at=now,
            replayed_by=by[:160],
            replay_count=DeadLetter.replay_count + 1,
        )
    )
