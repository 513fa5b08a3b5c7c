"""All SQL of retention and purges. Every change is fenced on the job's state, so several sweepers (one
per worker) and a concurrent purge never act on a job twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Row, Select, delete, func, select, update
from sqlalchemy.orm import Session

from pagemill.models import DeadLetter, Job, JobState, Page
from pagemill.models.job import FINAL_JOB_STATES


# Jobs from before tiers were recorded on them fall under the standard tier's retention.
def _of_tier(name: str) -> ColumnElement[bool]:
    return func.coalesce(Job.tier, "standard") == name


_ENDED_WITH_RESULTS = tuple(FINAL_JOB_STATES - {JobState.EXPIRED})


def originals_past(
    session: Session, tier: str, finished_before: datetime, limit: int
) -> list[tuple[str, str]]:
    """(id, source key) of final jobs of ``tier`` that ended before ``finished_before`` and still have
    their original."""
    rows = session.execute(
        select(Job.id, Job.source_key)
        .where(
            Job.state.in_(FINAL_JOB_STATES),
            _of_tier(tier),
            Job.finished_at < finished_before,
            Job.source_deleted_at.is_(None),
        )
        .order_by(Job.finished_at)
        .limit(limit)
    ).all()
    return [(str(job_id), str(key)) for job_id, key in rows]


def mark_sources_deleted(session: Session, job_ids: Sequence[str], now: datetime) -> None:
    """Record that these jobs' originals were deleted."""
    session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.source_deleted_at.is_(None))
        .values(source_deleted_at=now)
    )


def results_past(session: Session, tier: str, finished_before: datetime, limit: int) -> list[str]:
    """Ids of final, not yet expired jobs of ``tier`` that ended before ``finished_before``."""
    rows = session.scalars(
        select(Job.id)
        .where(Job.state.in_(_ENDED_WITH_RESULTS), _of_tier(tier), Job.finished_at < finished_before)
        .order_by(Job.finished_at)
        .limit(limit)
    ).all()
    return [str(job_id) for job_id in rows]


def retire_jobs(session: Session, job_ids: Sequence[str], now: datetime, *, purged: bool) -> list[str]:
    """Mark jobs retiring before their blobs are deleted: from then on no cached job adopts them
    (pagemill.jobs.cache_repository), so the readers of their results are known and can be handed over. The
    ids marked now or before, of jobs that :func:`expire_jobs` would change."""
    states = FINAL_JOB_STATES if purged else _ENDED_WITH_RESULTS
    return [
        str(job_id)
        for job_id in session.scalars(
            update(Job)
            .where(Job.id.in_(list(job_ids)), Job.state.in_(states))
            .values(retiring_at=func.coalesce(Job.retiring_at, now))
            .returning(Job.id)
        ).all()
    ]


@dataclass(frozen=True)
class Readers:
    """Who still reads a retiring job's page rows and results (cached jobs: ``pages_from``)."""

    formats: list[str]
    """The owner's result formats: the blobs to hand over."""
    heir: str | None
    """The oldest reader that is not retiring itself: it gets them."""
    waiting: bool
    """Readers exist, but all are retiring: they go first."""


def result_readers(session: Session, owner_id: str) -> Readers:
    """The readers of ``owner_id``'s page rows and results, and the one to hand them to."""
    options = session.scalar(select(Job.options).where(Job.id == owner_id)) or {}
    readers = session.execute(_readers_of(owner_id)).all()
    return Readers(formats=list(options.get("formats", [])), heir=_heir(readers), waiting=bool(readers))


def hand_over(session: Session, owner_id: str, heir: str) -> bool:
    """Give ``owner_id``'s page rows to ``heir`` (the caller copied the owner's results to it first), and
    point every other reader and the owner itself at the heir until they expire; True as well when that was
    done already (another sweeper, or a purge, handed it over to the same heir); False, changing nothing,
    when ``heir`` is no longer the oldest reader that is not retiring (it began to expire meanwhile).

    The owner is locked first, so two hand-overs of it take turns, and then its readers: none expires
    halfway through."""
    handed_to = session.scalar(select(Job.pages_from).where(Job.id == owner_id).with_for_update())
    if handed_to == heir:
        return True
    if _heir(session.execute(_readers_of(owner_id).with_for_update()).all()) != heir:
        return False
    session.execute(update(Page).where(Page.job_id == owner_id).values(job_id=heir))
    session.execute(update(Job).where(Job.pages_from == owner_id, Job.id != heir).values(pages_from=heir))
    session.execute(update(Job).where(Job.id == heir).values(pages_from=None))
    session.execute(update(Job).where(Job.id == owner_id).values(pages_from=heir))
    return True


def _heir(readers: Sequence[Row[str, datetime | None]]) -> str | None:
    """The oldest of ``_readers_of``'s rows that is not retiring itself."""
    return next((str(job_id) for job_id, retiring_at in readers if retiring_at is None), None)


def _readers_of(owner_id: str) -> Select[str, datetime | None]:
    return (
        select(Job.id, Job.retiring_at)
        .where(Job.pages_from == owner_id, Job.state != JobState.EXPIRED)
        .order_by(Job.created_at, Job.id)
    )


def expire_jobs(session: Session, job_ids: Sequence[str], now: datetime, *, purged: bool) -> list[str]:
    """Mark final jobs expired (their blobs are deleted by the caller) and remove their page rows (the page
    text) and their dead letters' tracebacks; the ids changed. A purge also applies to jobs already expired
    (it marks them purged).

    Page rows that cached jobs still use (``pages_from``) are not deleted but handed over to one of them
    (see :func:`_hand_over_pages`): the expired job's own data is gone from it, and the copies keep theirs.
    The service hands them over before, with the results (:func:`hand_over`); this catches readers that it
    did not.
    """
    states = FINAL_JOB_STATES if purged else _ENDED_WITH_RESULTS
    values: dict[str, object] = {
        "state": JobState.EXPIRED,
        "expired_at": func.coalesce(Job.expired_at, now),
        "source_deleted_at": func.coalesce(Job.source_deleted_at, now),
        "pages_from": None,  # an expired job reads no pages, its own or shared
        "updated_at": now,
    }
    if purged:
        values["purged"] = True
    changed = [
        str(job_id)
        for job_id in session.scalars(
            update(Job)
            .where(Job.id.in_(list(job_ids)), Job.state.in_(states))
            .values(**values)
            .returning(Job.id)
        ).all()
    ]
    for job_id in changed:
        _hand_over_pages(session, job_id)
    if changed:
        # Their dead letters stay (operations history) without the tracebacks, which may quote the document.
        wiped = {"traceback": None, "error_details": None}
        session.execute(update(DeadLetter).where(DeadLetter.job_id.in_(changed)).values(**wiped))
    return changed


def _hand_over_pages(session: Session, owner_id: str) -> None:
    """Give the page rows of ``owner_id`` (expired just now, in this transaction) to the oldest job that
    still uses them, and point the others at it; with no such job, delete them.

    The users are locked, and the lock re-checks that they are not expired: a user that another sweeper is
    expiring at the same moment is not chosen (its rows would be left behind on an expired job). A cache
    hit adopting this owner meanwhile holds the owner's row, which this transaction updated first: it
    commits before (and is among the users here) or finds the owner expired (pagemill.jobs.cache)."""
    users = session.scalars(
        select(Job.id)
        .where(Job.pages_from == owner_id, Job.state != JobState.EXPIRED)
        .order_by(Job.created_at, Job.id)
        .with_for_update()
    ).all()
    if not users:
        session.execute(delete(Page).where(Page.job_id == owner_id))
        return
    heir = str(users[0])
    session.execute(update(Page).where(Page.job_id == owner_id).values(job_id=heir))
    session.execute(update(Job).where(Job.pages_from == owner_id, Job.id != heir).values(pages_from=heir))
    session.execute(update(Job).where(Job.id == heir).values(pages_from=None))
