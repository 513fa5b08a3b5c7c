"""Live progress of a job, for the API (never commits): its pages as they finish, the result so far, and
where it stands in its queues with an estimate of when it ends.

The estimate (``queue_position``, ``eta_s``) approximates the fair scheduler (pagemill.jobs.claims), per
queue the job's pages wait on:

* pages ahead: unclaimed pending pages of other active jobs served first. All of those of a higher
  priority; of the same priority, all of the same tenant's older jobs (a tenant's oldest job goes first);
  and of each other tenant of the same priority at most as many as the job's tenant still needs turns
  (its older jobs' pages plus the job's own), since tenants of one priority take turns. Lower priorities
  wait; pages being read now are not counted (their workers are busy with them, which the rate reflects);
* the pool's rate: pages that queue's workers read in the last minute (``pages.finished_at``) over the
  time since the first of them (at least 5 s, so one page just read does not make a burst);
* ``eta_s``: (pages ahead + the job's own pending pages) / rate, the slowest of its queues. Unknown (null)
  while the job's pages are not planned yet, or when a queue it waits on read nothing in the last minute.

The rate is what the pool did, not what it could do: a pool that was idle or shared reads as slower. What
waits on a queue and the pool's rate are counted at most once a second per process (the same for every
job), so an estimate may be a second old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.engines.registry import engine_pool
from pagemill.errors import NotFound
from pagemill.jobs import progress_repository as repo
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs import service as jobs
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.jobs.progress_repository import QueueThroughput, WaitingJob
from pagemill.jobs.results import PageRecord, write_results
from pagemill.models import Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor

RATE_WINDOW_S = 60.0
"""How far back a pool's pages per second are measured."""
MIN_RATE_SPAN_S = 5.0
"""The shortest time a rate is measured over (a page read a moment ago is not a rate of thousands)."""
SNAPSHOT_TTL_S = 1.0
"""How long a process reuses what it counted on a queue (see :func:`queue_snapshot`)."""

_ACTIVE = (JobState.QUEUED, JobState.RUNNING)
_READ = (PageState.DONE, PageState.FAILED)
_CHUNK = 64 * 1024


# --- The estimate -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueLoad:
    """One queue as the job sees it: its own pending pages there, the pages ahead, the pool's rate."""

    queue: str
    own_pages: int
    ahead: int
    pages_per_s: float | None


@dataclass(frozen=True)
class Estimate:
    """Where an active job stands: pages ahead of it in its queues, and seconds until it ends."""

    queue_position: int | None = None
    eta_s: float | None = None


def pages_ahead(job: Job, own_pages: int, waiting: Iterable[WaitingJob]) -> int:
    """Pages the scheduler serves before ``job``'s ``own_pages`` on one queue, from the jobs waiting there
    (see the module docstring)."""
    ahead = 0
    own_tenant_older = 0
    other_tenants: dict[str, int] = {}
    for row in waiting:
        if row.job_id == job.id or row.priority < job.priority:
            continue
        if row.priority > job.priority:
            ahead += row.pages
        elif row.tenant_id != job.tenant_id:
            other_tenants[row.tenant_id] = other_tenants.get(row.tenant_id, 0) + row.pages
        elif _submitted_before(row, job):
            own_tenant_older += row.pages
    # Tenants of one priority take turns: while the job's tenant takes its turns (its older jobs' pages,
    # then the job's own; one at least, for a job whose pages are not known yet), each other tenant takes
    # as many, or fewer if it runs out.
    turns = own_tenant_older + max(own_pages, 1)
    return ahead + own_tenant_older + sum(min(pages, turns) for pages in other_tenants.values())


def _submitted_before(row: WaitingJob, job: Job) -> bool:
    """Whether the waiting job comes before ``job`` within their tenant (the oldest first, as the
    scheduler orders them; the id breaks a tie)."""
    mine = (job.created_at.replace(tzinfo=None), job.id)
    return (row.created_at.replace(tzinfo=None), row.job_id) < mine


def pool_rate(throughput: QueueThroughput | None, now: datetime) -> float | None:
    """A pool's pages per second from what it read in the window; None when it read nothing."""
    if throughput is None or throughput.pages <= 0:
        return None
    span = (now - throughput.first_finished_at).total_seconds()
    return throughput.pages / min(max(span, MIN_RATE_SPAN_S), RATE_WINDOW_S)


def eta_seconds(loads: Sequence[QueueLoad]) -> float | None:
    """Seconds until the job's pages are read: the slowest queue's (pages ahead + own) / rate; None when
    a queue holding its pages has no known rate."""
    times = []
    for load in loads:
        if load.own_pages <= 0:
            continue
        if not load.pages_per_s:
            return None
        times.append((load.ahead + load.own_pages) / load.pages_per_s)
    return round(max(times), 1) if times else 0.0


def expected_queues(job: Job, settings: Settings) -> list[str]:
    """Where a job not planned yet will wait: the CPU queue (the text pass, CPU OCR) and the pool of its
    first OCR engine."""
    options = JobOptions.model_validate(job.options)
    return sorted({queue.CPU_QUEUE, engine_pool(options.engine or settings.engines.default)})


@dataclass(frozen=True)
class QueueSnapshot:
    """What waits on one queue and what its pool read lately, the same for every job that asks."""

    waiting: list[WaitingJob]
    throughput: QueueThroughput | None
    taken_at: float


_snapshots: dict[tuple[str, str], QueueSnapshot] = {}
_snapshots_lock = threading.Lock()


def queue_snapshot(session: Session, queue_name: str, now: datetime) -> QueueSnapshot:
    """The queue's snapshot, taken at most every ``SNAPSHOT_TTL_S`` per process: counting a backlog of
    tens of thousands of waiting pages takes tens of milliseconds, which status polls of many jobs then
    share instead of each paying it."""
    key = (str(session.get_bind().engine.url), queue_name)
    with _snapshots_lock:
        cached = _snapshots.get(key)
    if cached is not None and time.monotonic() - cached.taken_at < SNAPSHOT_TTL_S:
        return cached
    snapshot = QueueSnapshot(
        waiting=repo.waiting_jobs(session, queue_name),
        throughput=repo.finished_since(session, queue_name, now - timedelta(seconds=RATE_WINDOW_S)),
        taken_at=time.monotonic(),
    )
    with _snapshots_lock:
        _snapshots[key] = snapshot
    return snapshot


def estimate(session: Session, job: Job, settings: Settings, now: datetime | None = None) -> Estimate:
    """``queue_position`` and ``eta_s`` of an active job (both None for a final one): one indexed
    aggregate of its own pending pages, and its queues' snapshots (two more, at most once a second)."""
    if job.state not in _ACTIVE:
        return Estimate()
    now = now or utcnow()
    own = repo.pending_by_queue(session, job.id) if job.pages_total is not None else {}
    known = job.pages_total is not None and "" not in own  # planned, and every pending page routed
    if known and not own:
        return Estimate(queue_position=0, eta_s=0.0)  # every page read: the result is being written
    loads = []
    for name in sorted(own) if known else expected_queues(job, settings):
        snapshot = queue_snapshot(session, name, now)
        loads.append(
            QueueLoad(
                queue=name,
                own_pages=own.get(name, 0),
                ahead=pages_ahead(job, own.get(name, 0), snapshot.waiting),
                pages_per_s=pool_rate(snapshot.throughput, now),
            )
        )
    return Estimate(
        queue_position=sum(load.ahead for load in loads),
        eta_s=eta_seconds(loads) if known else None,
    )


def job_status(session: Session, tenant_id: str, job_id: str, settings: Settings) -> tuple[Job, Estimate]:
    """A tenant's job and, while it is active, its estimate (GET /jobs/{id})."""
    job = jobs.get_job(session, tenant_id, job_id)
    return job, estimate(session, job, settings)


# --- Pages as they finish -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FinishedPages:
    """A slice of a job's finished pages: ``next_after`` is the page number to continue after."""

    job: Job
    pages: list[Page]
    next_after: int
    has_more: bool


def finished_pages(session: Session, tenant_id: str, job_id: str, *, after: int, limit: int) -> FinishedPages:
    """The job's finished pages (done or failed) numbered above ``after``, in page order, up to ``limit``.

    The listing stops before the first page still pending, so that ``next_after`` never passes a page that
    finishes later (workers finish pages out of order): polling with ``after=next_after`` sees every page
    once. Skipped pages (a cancel) are passed over, not listed."""
    job = jobs.job_with_pages(session, tenant_id, job_id)
    # A job answered from the result cache reads the page rows of the job that owns them.
    rows = repo.pages_after(session, job.pages_from or job.id, after - 1, limit)
    listed: list[Page] = []
    next_after = after
    waiting = False
    for page in rows:
        if page.state == PageState.PENDING:
            waiting = True
            break
        if page.state in _READ:
            listed.append(page)
        next_after = page.index + 1
    has_more = waiting or len(rows) == limit or job.state in _ACTIVE
    return FinishedPages(job=job, pages=listed, next_after=next_after, has_more=has_more)


# --- The result so far --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultStream:
    """A result to send: its bytes, media type and the headers that say how complete it is."""

    chunks: Iterator[bytes]
    media_type: str
    headers: dict[str, str]


def open_result(
    session: Session,
    store: BlobStore,
    tenant_id: str,
    job_id: str,
    fmt: OutputFormat,
    *,
    actor: Actor,
    partial: bool,
) -> ResultStream:
    """The job's result in ``fmt``. Without ``partial``: the stored result of a finished job (see
    pagemill.jobs.service.open_result). With it: the stored result when there is one (``Pagemill-Partial:
    false``), else the pages finished so far assembled now, in page order (``Pagemill-Partial: true``,
    and ``Pagemill-Pages-Done`` / ``-Failed`` / ``-Total``)."""
    if not partial or _has_stored_result(jobs.get_job(session, tenant_id, job_id)):
        chunks, media_type = jobs.open_result(session, store, tenant_id, job_id, fmt, actor=actor)
        return ResultStream(chunks, media_type, {"Pagemill-Partial": "false"} if partial else {})
    job = jobs.job_with_pages(session, tenant_id, job_id)
    if fmt.value not in job.options.get("formats", []):
        raise NotFound("This format was not requested for the job.", format=fmt.value)
    audit.record(
        session,
        actor,
        audit.RESULT_READ,
        target=job.id,
        tenant_id=tenant_id,
        details={"format": fmt.value, "partial": True},
    )
    counts = {PageState.DONE: 0, PageState.FAILED: 0}

    def finished() -> Iterator[PageRecord]:
        for record in jobs_repo.iter_page_records(session, job.pages_from or job.id):
            if record.state in counts:
                counts[PageState(record.state)] += 1
                yield record

    files = write_results(job, finished(), [fmt], partial=True)
    headers = {
        "Pagemill-Partial": "true",
        "Pagemill-Pages-Done": str(counts[PageState.DONE]),
        "Pagemill-Pages-Failed": str(counts[PageState.FAILED]),
        "Pagemill-Pages-Total": "" if job.pages_total is None else str(job.pages_total),
    }
    return ResultStream(_drain(files[fmt]), jobs.RESULT_MEDIA_TYPES[fmt], headers)


def _has_stored_result(job: Job) -> bool:
    """Whether the job's result files were written (what the plain result endpoint serves); an expired
    job counts (it answers 410 there)."""
    if job.state in (JobState.SUCCEEDED, JobState.EXPIRED):
        return True
    return job.state == JobState.CANCELLED and job.pages_total is not None and job.pages_done > 0


def _drain(fileobj: IO[bytes]) -> Iterator[bytes]:
    """The temp file's bytes in chunks; closed (deleted) at the end, also when the client goes away."""
    try:
        while chunk := fileobj.read(_CHUNK):
            yield chunk
    finally:
        fileobj.close()
