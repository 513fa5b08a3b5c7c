"""The job service for the API side: read, list, cancel, fetch results (submission: pagemill.jobs.submission).
Never commits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy.orm import Session

from pagemill.errors import (
    Conflict,
    NotFound,
    ResultExpired,
)
from pagemill.events import service as events
from pagemill.jobs import repository as repo
from pagemill.jobs.options import OutputFormat
from pagemill.models import Job, JobState, Page
from pagemill.pagination import decode_cursor, encode_cursor
from pagemill.storage import BlobStore
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor

log = logging.getLogger(__name__)


RESULT_FILES = {
    OutputFormat.MARKDOWN: "result.md",
    OutputFormat.TEXT: "result.txt",
    OutputFormat.JSON: "result.json",
    OutputFormat.SRT: "result.srt",
    OutputFormat.VTT: "result.vtt",
}
RESULT_MEDIA_TYPES = {
    OutputFormat.MARKDOWN: "text/markdown; charset=utf-8",
    OutputFormat.TEXT: "text/plain; charset=utf-8",
    OutputFormat.JSON: "application/json",
    OutputFormat.SRT: "application/x-subrip; charset=utf-8",
    OutputFormat.VTT: "text/vtt; charset=utf-8",
}


def source_key(job_id: str) -> str:
    """Where a job's original is stored."""
    return f"jobs/{job_id}/source"


def result_key(job_id: str, fmt: OutputFormat) -> str:
    """Where a job's result in one format is stored."""
    return f"jobs/{job_id}/{RESULT_FILES[fmt]}"


def stored_result_key(job: Job, fmt: OutputFormat) -> str:
    """Where ``job``'s result in ``fmt`` is read from: its own, or for a cached job the owner's of its pages
    (pagemill.jobs.cache), with the same options and so the same result."""
    return result_key(job.pages_from or job.id, fmt)


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """A tenant's job by id in any UUID spelling; NotFound if there is none, or it is another tenant's."""
    canonical = _canonical_uuid(job_id)
    job = repo.get_tenant_job(session, tenant_id, canonical) if canonical else None
    if job is None:
        raise NotFound("No job with this id.", job_id=job_id)
    return job


def _canonical_uuid(value: str) -> str | None:
    """The stored spelling of a UUID (lower case, hyphenated), from any spelling ``uuid.UUID`` accepts
    (upper case, no hyphens, braces, ``urn:uuid:``); None if ``value`` is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    state: JobState | None,
    limit: int,
    cursor: str | None,
    ids: Sequence[str] | None = None,
) -> tuple[list[Job], str | None]:
    """A page of a tenant's jobs (only ``ids``, when given), newest first, and the cursor of the next
    page."""
    after = decode_cursor(cursor) if cursor else None
    if ids is not None:
        # Any UUID spelling, as GET /jobs/{id} takes; what is no UUID matches nothing.
        ids = [canonical for canonical in map(_canonical_uuid, ids) if canonical is not None]
    jobs = list(
        repo.list_jobs(session, tenant_id=tenant_id, state=state, limit=limit + 1, after=after, ids=ids)
    )
    next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return jobs[:limit], next_cursor


def cancel_job(session: Session, tenant_id: str, job_id: str, *, actor: Actor) -> Job:
    """Ask a job to stop at the next page boundary; finished pages are kept.

    A queued job ends ``cancelled`` at once. A running job is stopped by its workers between pages; one
    that no worker is advancing (lost messages, pages waiting for an absent pool) is ended ``cancelled`` by
    the sweeper once it has made no progress for ``worker.cancel_grace_s`` (pagemill.jobs.sweeper).
    """
    job = get_job(session, tenant_id, job_id)
    if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED):
        raise Conflict("The job has already finished.", state=job.state)
    if job.state != JobState.CANCELLED:
        audit.record(session, actor, audit.JOB_CANCELLED, target=job.id, tenant_id=tenant_id)
    if repo.request_cancel(session, job.id):
        events.job_ended(session, job.id, JobState.CANCELLED)
    session.flush()
    session.refresh(job)
    return job


def get_page(session: Session, tenant_id: str, job_id: str, number: int) -> Page:
    """One page of a tenant's job by its 1-based number; ResultExpired once its pages were deleted."""
    job = get_job(session, tenant_id, job_id)
    if job.state == JobState.EXPIRED:
        raise _expired(job)
    # A job answered from the result cache reads the page rows of the job that owns them.
    page = repo.get_page(session, job.pages_from or job.id, number - 1) if number >= 1 else None
    if page is None:
        raise NotFound(
            "This job has no such page: pages are numbered from 1 as in the document, and only pages in the "
            "job's page range exist.",
            page=number,
            page_count=job.page_count,
        )
    return page


def job_with_pages(session: Session, tenant_id: str, job_id: str) -> Job:
    """A tenant's job whose page rows can be read: NotFound, or ResultExpired once retention or a purge
    deleted them."""
    job = get_job(session, tenant_id, job_id)
    if job.state == JobState.EXPIRED:
        raise _expired(job)
    return job


def open_result(
    session: Session, store: BlobStore, tenant_id: str, job_id: str, fmt: OutputFormat, *, actor: Actor
) -> tuple[Iterator[bytes], str]:
    """The stored result of a tenant's finished job in ``fmt`` as a byte stream (audited), and its type."""
    job = readable_result(session, tenant_id, job_id, fmt)
    audit.record(
        session, actor, audit.RESULT_READ, target=job.id, tenant_id=tenant_id, details={"format": fmt.value}
    )
    return store.iter_chunks(stored_result_key(job, fmt)), RESULT_MEDIA_TYPES[fmt]


def _expired(job: Job) -> ResultExpired:
    return ResultExpired(
        "The job's results were purged." if job.purged else None,
        expired_at=job.expired_at.isoformat() if job.expired_at else None,
        purged=job.purged,
    )


def readable_result(session: Session, tenant_id: str, job_id: str, fmt: OutputFormat) -> Job:
    """A tenant's job whose result in ``fmt`` can be read: NotFound, Conflict (not finished, or no result)
    or ResultExpired (deleted by retention or a purge) otherwise."""
    job = get_job(session, tenant_id, job_id)
    if job.state == JobState.EXPIRED:
        raise _expired(job)
    if job.state not in (JobState.SUCCEEDED, JobState.CANCELLED):
        raise Conflict(
            f"The result is not available: the job is {job.state}.",
            state=job.state,
        )
    # Cancelled before a worker opened it (no pages planned), or before any page was read (every page
    # skipped): an empty "result" would read as a document without text, so there is none.
    if job.pages_total is None or (job.state == JobState.CANCELLED and job.pages_done == 0):
        raise Conflict(
            "The job was cancelled before any page was read; it has no result.",
            state=job.state,
            pages_done=job.pages_done,
        )
    if fmt.value not in job.options.get("formats", []):
        raise NotFound("This format was not requested for the job.", format=fmt.value)
    return job
