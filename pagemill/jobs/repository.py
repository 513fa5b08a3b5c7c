"""All SQL for jobs and pages. Updates that change state are conditional (fencing against duplicates)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from pagemill.jobs.results import PageRecord
from pagemill.models import Job, JobState, Page, PageState
from pagemill.models.base import utcnow

ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)


def add_job(session: Session, job: Job) -> None:
    """Insert a new job."""
    session.add(job)


def get_job_by_idempotency_key(session: Session, tenant_id: str, key: str) -> Job | None:
    """The tenant's job submitted with ``key`` as its Idempotency-Key, or None."""
    return session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)).first()


def get_job(session: Session, job_id: str) -> Job | None:
    """A job by id, or None."""
    return session.get(Job, job_id)


def get_tenant_job(session: Session, tenant_id: str, job_id: str) -> Job | None:
    """A job by id if it belongs to ``tenant_id``, or None (another tenant's job does not exist for them)."""
    job = session.get(Job, job_id)
    return job if job is not None and job.tenant_id == tenant_id else None


def list_jobs(
    session: Session,
    *,
    tenant_id: str,
    state: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    ids: Sequence[str] | None = None,
) -> Sequence[Job]:
    """A tenant's jobs newest first, after a (created_at, id) cursor; only ``ids`` when given."""
    query = (
        select(Job)
        .where(Job.tenant_id == tenant_id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    if state is not None:
        query = query.where(Job.state == state)
    if ids is not None:
        query = query.where(Job.id.in_(list(ids)))
    if after is not None:
        created_at, job_id = after
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    return session.scalars(query).all()


def start_job(session: Session, job_id: str) -> int | None:
    """Mark a job running and count the attempt; the new attempt number, or None if the job is final."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
        .values(
            state=JobState.RUNNING,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
        .returning(Job.attempts)
    )
    row = result.first()
    return None if row is None else int(row[0])


def set_page_count(session: Session, job_id: str, page_count: int) -> None:
    """Record how many pages the document has, as soon as it is known (a job failed later keeps it)."""
    session.execute(
        update(Job).where(Job.id == job_id, Job.page_count.is_(None)).values(page_count=page_count)
    )


def set_planned(
    session: Session, job_id: str, page_count: int, indices: Sequence[int], route: PageRoute | None = None
) -> int:
    """Record the page count and create one pending row per selected page (once); the rows created.

    Pages made before (a recording's pieces, started while it was cut) are kept as they are. With ``route``
    the new rows are routed already (else :func:`~pagemill.jobs.claim_repository.route_pending_pages`).
    """
    planned = session.execute(
        update(Job)
        # Fenced on the job being active too: a job the sweeper ended while it was being opened gets no
        # pending pages that nothing would ever read.
        .where(Job.id == job_id, Job.pages_total.is_(None), Job.state.in_(ACTIVE_STATES))
        .values(page_count=page_count, pages_total=len(indices), updated_at=utcnow())
    )
    if not planned.rowcount:  # type: ignore[attr-defined]
        return 0  # planned by another delivery (its pages exist), or final
    return _insert_pages(session, job_id, indices, route)


class PageRoute(NamedTuple):
    """Where new pages are read: the queue of their pool, OCR or not, where the engine chain starts."""

    queue: str
    ocr: bool
    chain_start: int


def add_pending_pages(session: Session, job_id: str, indices: Sequence[int], route: PageRoute) -> int:
    """Create pending, routed rows for ``indices`` of a job that is active and not planned yet (a
    recording's pieces as they are cut); rows that exist are left alone. The rows created."""
    active = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.pages_total.is_(None), Job.state.in_(ACTIVE_STATES))
        .values(updated_at=utcnow())
    )
    if not active.rowcount:  # type: ignore[attr-defined]
        return 0
    return _insert_pages(session, job_id, indices, route)


def _insert_pages(session: Session, job_id: str, indices: Sequence[int], route: PageRoute | None) -> int:
    existing = set(session.scalars(select(Page.index).where(Page.job_id == job_id)))
    routed = {} if route is None else route._asdict()
    rows = [
        {"job_id": job_id, "index": i, "state": PageState.PENDING, "attempts": 0, "rotation": 0, **routed}
        for i in indices
        if i not in existing
    ]
    for start in range(0, len(rows), 1000):
        session.execute(insert(Page), rows[start : start + 1000])
    return len(rows)


def pending_pages(
    session: Session, job_id: str, indices: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """(index, attempts) of the job's pending pages, optionally among ``indices``."""
    query = select(Page.index, Page.attempts).where(Page.job_id == job_id, Page.state == PageState.PENDING)
    if indices is not None:
        query = query.where(Page.index.in_(list(indices)))
    return [(int(i), int(a)) for i, a in session.execute(query.order_by(Page.index)).all()]


def count_attempt(session: Session, job_id: str, indices: Sequence[int]) -> None:
    """Count one attempt at these pages before work starts, so a crash mid-page is remembered.

    A worker taking the job's pages is the job moving: the sweeper's count of fruitless re-enqueues starts
    again (a page that keeps failing is bounded by its attempts instead).
    """
    session.execute(
        update(Page)
        .where(Page.job_id == job_id, Page.index.in_(list(indices)), Page.state == PageState.PENDING)
        .values(attempts=Page.attempts + 1)
    )
    session.execute(update(Job).where(Job.id == job_id, Job.requeues > 0).values(requeues=0))


def uncount_attempt(session: Session, job_id: str, indices: Sequence[int]) -> None:
    """Take back the attempt counted for pages handed on to OCR unread (the text pass did not fail them)."""
    session.execute(
        update(Page)
        .where(Page.job_id == job_id, Page.index.in_(list(indices)), Page.state == PageState.PENDING)
        .values(attempts=Page.attempts - 1)
    )


def cancel_requested(session: Session, job_id: str) -> bool:
    """Whether the client asked to cancel (checked between pages)."""
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


_DONE_COLUMNS = ("engine", "model", "rotation", "text", "markdown", "data", "lines_json", "duration_ms")
_FAILED_COLUMNS = ("error_code", "error_message")
_DEFAULTS: dict[str, Any] = {"rotation": 0}


def finish_pages(
    session: Session,
    job_id: str,
    state: PageState,
    rows: Sequence[dict[str, Any]],
    *,
    claim_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """Move many pending pages to ``state`` in one statement (``rows``: ``index`` plus the page's values),
    ``finished_at`` ``now`` (the pages this statement moved are those with exactly that time); how many it
    moved.

    Fenced on the page still being pending (a page another attempt already finished is left as it is) and,
    given ``claim_id``, on the page still being held by that claim (a worker whose claim lapsed and was
    taken by another commits nothing). The claim ends with the page.
    """
    if not rows:
        return 0
    columns = _DONE_COLUMNS if state == PageState.DONE else _FAILED_COLUMNS
    table = cast(Table, Page.__table__)
    fences = [
        table.c.job_id == job_id,
        table.c.index == bindparam("b_index"),
        table.c.state == PageState.PENDING,
    ]
    if claim_id is not None:
        fences.append(table.c.claim_id == claim_id)
    statement = (
        table.update()
        .where(*fences)
        .values(
            state=state,
            finished_at=now or utcnow(),
            claim_id=None,
            claim_expires_at=None,
            **{name: bindparam(f"b_{name}") for name in columns},
        )
    )
    params = [
        {"b_index": row["index"], **{f"b_{name}": row.get(name, _DEFAULTS.get(name)) for name in columns}}
        for row in rows
    ]
    # Both drivers sum an executemany's rowcount (SQLAlchemy: supports_sane_multi_rowcount).
    return int(session.connection().execute(statement, params).rowcount)


class ProgressCounts(NamedTuple):
    """A job's counts as a recount or a save left them, with what its last job.progress event recorded."""

    state: str
    pages_total: int | None
    pages_done: int
    pages_failed: int
    progress_event_at: datetime | None
    progress_event_pages: int


# What a recount or a save returns of the job, in ProgressCounts' order.
_PROGRESS_COLUMNS = (
    Job.state,
    Job.pages_total,
    Job.pages_done,
    Job.pages_failed,
    Job.progress_event_at,
    Job.progress_event_pages,
)


def refresh_progress(session: Session, job_id: str) -> ProgressCounts | None:
    """Recount the job's done and failed pages and touch it (the sweeper's heartbeat); the counts (None if
    the job is gone).

    Counting instead of adding keeps the counters right when duplicate deliveries race on the same pages.
    """

    def count(state: PageState) -> Any:
        return (
            select(func.count())
            .select_from(Page)
            .where(Page.job_id == job_id, Page.state == state)
            .scalar_subquery()
        )

    done, failed = count(PageState.DONE), count(PageState.FAILED)
    # A page finished since the last recount is progress: the sweeper's count of fruitless re-enqueues
    # starts again (on the right-hand side, columns are the row's values before this update).
    unchanged = and_(Job.pages_done == done, Job.pages_failed == failed)
    row = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            pages_done=done,
            pages_failed=failed,
            requeues=case((unchanged, Job.requeues), else_=0),
            updated_at=utcnow(),
        )
        .returning(*_PROGRESS_COLUMNS)
    ).first()
    return None if row is None else ProgressCounts(*row)


def add_progress(session: Session, job_id: str, *, done: int, failed: int) -> ProgressCounts | None:
    """Add the pages a save just moved (:func:`finish_pages`' counts) to the job's counters and touch it
    (the sweeper's heartbeat); the counts (None if the job is gone).

    Cheaper than :func:`refresh_progress`'s recount, and exact under concurrent saves: the job's row is
    locked by the update, so each save adds to what the one before it left (a recount's subqueries on
    Postgres see only what was committed when its statement began).
    """
    values: dict[str, Any] = {"updated_at": utcnow()}
    if done or failed:
        # Progress: the sweeper's count of fruitless re-enqueues starts again.
        values.update(pages_done=Job.pages_done + done, pages_failed=Job.pages_failed + failed, requeues=0)
    row = session.execute(
        update(Job).where(Job.id == job_id).values(**values).returning(*_PROGRESS_COLUMNS)
    ).first()
    return None if row is None else ProgressCounts(*row)


def skip_pending_pages(session: Session, job_id: str, indices: Sequence[int] | None = None) -> int:
    """Mark pending pages skipped (the job was cancelled); how many."""
    query = update(Page).where(Page.job_id == job_id, Page.state == PageState.PENDING)
    if indices is not None:
        query = query.where(Page.index.in_(list(indices)))
    result = session.execute(query.values(state=PageState.SKIPPED, finished_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]


def fail_pending_pages(session: Session, job_id: str, code: str, message: str) -> int:
    """Fail every pending page of a job with one error (the sweeper gave the job up); how many."""
    result = session.execute(
        update(Page)
        .where(Page.job_id == job_id, Page.state == PageState.PENDING)
        .values(state=PageState.FAILED, error_code=code, error_message=message, finished_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def pages_finished_at(session: Session, job_id: str, indices: Sequence[int], at: datetime) -> set[int]:
    """Which of ``indices`` were finished at exactly ``at`` (by the :func:`finish_pages` calls given it)."""
    rows = session.scalars(
        select(Page.index).where(Page.job_id == job_id, Page.index.in_(list(indices)), Page.finished_at == at)
    )
    return {int(index) for index in rows}


def page_state_counts(session: Session, job_id: str) -> dict[str, int]:
    """How many of the job's pages are in each state."""
    rows = session.execute(
        select(Page.state, func.count()).where(Page.job_id == job_id).group_by(Page.state)
    ).all()
    return {str(state): int(n) for state, n in rows}


def get_page(session: Session, job_id: str, index: int) -> Page | None:
    """One page of a job."""
    return session.get(Page, (job_id, index))


def iter_pages(session: Session, job_id: str, batch: int = 200) -> Iterator[Page]:
    """The job's pages in order, fetched in batches (a 10,000-page job is never loaded at once)."""
    last = -1
    while True:
        rows = session.scalars(
            select(Page).where(Page.job_id == job_id, Page.index > last).order_by(Page.index).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].index
        session.expunge_all()


_RECORD_COLUMNS = [field.name for field in fields(PageRecord)]


def iter_page_records(session: Session, job_id: str, batch: int = 500) -> Iterator[PageRecord]:
    """The job's pages in order as plain records, fetched in batches (never all at once)."""
    table = cast(Table, Page.__table__)
    columns = [table.c[name] for name in _RECORD_COLUMNS]
    last = -1
    while True:
        rows = session.execute(
            select(*columns)
            .where(table.c.job_id == job_id, table.c.index > last)
            .order_by(table.c.index)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield PageRecord(*row)
        last = rows[-1][0]


def first_page_error(session: Session, job_id: str) -> tuple[str | None, str | None]:
    """Code and message of the job's first failed page."""
    row = session.execute(
        select(Page.error_code, Page.error_message)
        .where(Page.job_id == job_id, Page.state == PageState.FAILED)
        .order_by(Page.index)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def finish_job(
    session: Session,
    job_id: str,
    state: JobState,
    *,
    error: dict[str, Any] | None = None,
    pages: tuple[int, int] | None = None,
) -> bool:
    """Move an active job to a final state, once; wipes the sealed password. False if already final.

    ``pages`` (done, failed) are the final counts: the running recount of each save can miss the pages of a
    save that committed during its statement (Postgres evaluates the count in the statement's snapshot), and
    the last word on a finished job must be exact."""
    values: dict[str, Any] = {
        "state": state,
        "finished_at": utcnow(),
        "updated_at": utcnow(),
        "document_password_sealed": None,
    }
    if pages is not None:
        values.update(pages_done=pages[0], pages_failed=pages[1])
    if error is not None:
        values.update(
            error_code=error["code"], error_message=error["message"], error_details=error["details"]
        )
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE_STATES)).values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, job_id: str) -> bool:
    """Flag an active job for cancellation; a job no worker has started is cancelled at once (True then)."""
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
        .values(cancel_requested=True, updated_at=now)
    )
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED)
        .values(state=JobState.CANCELLED, finished_at=now, document_password_sealed=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
