"""All SQL of the event outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from pagemill.models import Batch, Event, Job, JobState


@dataclass(frozen=True)
class JobSnapshot:
    """What an event says about its job, read in the statement that gave the event its sequence number."""

    job_id: str
    tenant_id: str
    seq: int
    state: str
    pages_total: int | None
    pages_done: int
    pages_failed: int
    error_code: str | None
    error_message: str | None
    batch_id: str | None
    callback_url: str | None
    cached_from: str | None
    formats: list[str]


_RETURNING = (
    Job.id,
    Job.tenant_id,
    Job.event_seq,
    Job.state,
    Job.pages_total,
    Job.pages_done,
    Job.pages_failed,
    Job.error_code,
    Job.error_message,
    Job.batch_id,
    Job.callback_url,
    Job.cached_from,
    Job.options,
)


def _snapshot(row: Any) -> JobSnapshot:
    options = row[12] or {}
    return JobSnapshot(
        job_id=row[0],
        tenant_id=row[1],
        seq=row[2],
        state=row[3],
        pages_total=row[4],
        pages_done=row[5],
        pages_failed=row[6],
        error_code=row[7],
        error_message=row[8],
        batch_id=row[9],
        callback_url=row[10],
        cached_from=row[11],
        formats=list(options.get("formats") or []),
    )


def take_seqs(session: Session, job_id: str, count: int = 1) -> JobSnapshot | None:
    """Give the job's next ``count`` sequence numbers (the snapshot's ``seq`` is the last); locks the job row
    (Postgres) to the commit, so the job's events commit in sequence order. None if there is no such job."""
    row = session.execute(
        update(Job).where(Job.id == job_id).values(event_seq=Job.event_seq + count).returning(*_RETURNING)
    ).first()
    return None if row is None else _snapshot(row)


def take_progress_seq(
    session: Session, job_id: str, *, now: datetime, not_since: datetime
) -> JobSnapshot | None:
    """The next sequence number for a job.progress event, if one is due: the job runs, pages were finished
    since the last one, and either none was written since ``not_since`` or another tenth of its pages is
    done. None when no event is due (nothing is changed then)."""
    finished = Job.pages_done + Job.pages_failed
    tenth_crossed = finished * 10 // Job.pages_total > Job.progress_event_pages * 10 // Job.pages_total
    row = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.state == JobState.RUNNING,
            Job.pages_total > 0,
            finished > Job.progress_event_pages,
            or_(Job.progress_event_at.is_(None), Job.progress_event_at <= not_since, tenth_crossed),
        )
        .values(event_seq=Job.event_seq + 1, progress_event_at=now, progress_event_pages=finished)
        .returning(*_RETURNING)
    ).first()
    return None if row is None else _snapshot(row)


def add_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert events (one statement; column values as dicts)."""
    if rows:
        session.execute(insert(Event), list(rows))


def add_event(session: Session, event: Event) -> None:
    """Insert one event and give it its id (flushed)."""
    session.add(event)
    session.flush()


def job_events(session: Session, job_id: str, *, after_seq: int, limit: int = 500) -> Sequence[Event]:
    """A job's events after ``after_seq``, in order."""
    return session.scalars(
        select(Event).where(Event.job_id == job_id, Event.seq > after_seq).order_by(Event.seq).limit(limit)
    ).all()


def tenant_events(
    session: Session,
    tenant_id: str,
    *,
    after_id: int,
    types: Sequence[str] | None = None,
    limit: int = 500,
    up_to: int | None = None,
) -> Sequence[Event]:
    """A tenant's events after ``after_id`` (the global order), optionally of some types only, and only up
    to the id ``up_to``."""
    query = select(Event).where(Event.tenant_id == tenant_id, Event.id > after_id)
    if up_to is not None:
        query = query.where(Event.id <= up_to)
    if types:
        query = query.where(Event.type.in_(list(types)))
    return session.scalars(query.order_by(Event.id).limit(limit)).all()


def events_after(session: Session, after_id: int, *, limit: int = 500) -> Sequence[Event]:
    """Every event after ``after_id`` in the global order (what an API process fans out to its streams)."""
    return session.scalars(select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)).all()


def events_among(session: Session, ids: Sequence[int]) -> Sequence[Event]:
    """The events with these ids that exist (committed) now, in id order."""
    if not ids:
        return []
    return session.scalars(select(Event).where(Event.id.in_(list(ids))).order_by(Event.id)).all()


def last_event_id(session: Session) -> int:
    """The highest event id so far (0 when there is none)."""
    value = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    return int(value or 0)


def lock_batch(session: Session, batch_id: str) -> Batch | None:
    """The batch, its row locked to the commit (Postgres), unless it completed already. Taken before its jobs
    are counted, so two of its jobs ending at once cannot both miss that they were the last."""
    return session.scalars(
        select(Batch)
        .where(Batch.id == batch_id, Batch.completed_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def batch_job_states(session: Session, batch_id: str) -> dict[str, int]:
    """How many of the batch's jobs are in each state (a fresh statement: sees jobs committed meanwhile)."""
    rows = session.execute(
        select(Job.state, func.count()).where(Job.batch_id == batch_id).group_by(Job.state)
    ).all()
    return {str(state): int(n) for state, n in rows}


def complete_batch(session: Session, batch_id: str, now: datetime) -> bool:
    """Mark the batch completed, once; False if it was already."""
    result = session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.completed_at.is_(None)).values(completed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def delete_events_before(session: Session, cutoff: datetime, *, limit: int) -> int:
    """Delete up to ``limit`` events handed to their sinks before ``cutoff``, oldest first (their webhook
    deliveries go with them, by cascade); how many. An event the relay has not handed on yet is kept
    whatever its age. An event is handed on when it is written (no sink wants it) or when the relay takes
    it, never before it was written: ``relayed_at`` before the cutoff means ``time`` is too, and
    ``ix_events_relayed_at_id`` finds exactly those, however many younger events the table holds."""
    oldest = (
        select(Event.id).where(Event.relayed_at < cutoff).order_by(Event.relayed_at, Event.id).limit(limit)
    )
    result = session.execute(
        delete(Event)
        .where(Event.id.in_(oldest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
