"""The job service for the API side: submit, read, list, cancel, fetch results. Never commits."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.documents.kinds import SNIFF_BYTES, sniff
from pagemill.errors import (
    Conflict,
    FileTooLarge,
    IdempotencyKeyReused,
    NotFound,
    QuotaExceeded,
    ValidationFailed,
)
from pagemill.jobs import repository as repo
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.models import Job, JobState, Page
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy import audit, usage
from pagemill.tenancy.principal import Actor, Principal

RESULT_FILES = {
    OutputFormat.MARKDOWN: "result.md",
    OutputFormat.TEXT: "result.txt",
    OutputFormat.JSON: "result.json",
}
RESULT_MEDIA_TYPES = {
    OutputFormat.MARKDOWN: "text/markdown; charset=utf-8",
    OutputFormat.TEXT: "text/plain; charset=utf-8",
    OutputFormat.JSON: "application/json",
}


def source_key(job_id: str) -> str:
    """Where a job's original is stored."""
    return f"jobs/{job_id}/source"


def result_key(job_id: str, fmt: OutputFormat) -> str:
    """Where a job's result in one format is stored."""
    return f"jobs/{job_id}/{RESULT_FILES[fmt]}"


_UNSAFE_NAME = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def sanitize_filename(name: str | None) -> str:
    """A display-safe file name: no path, no control characters, at most 255 characters."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = _UNSAFE_NAME.sub("_", base).strip("._ ") or "document"
    return base[:255]


def _hash_and_size(fileobj: IO[bytes], max_bytes: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fileobj.seek(0)
    while chunk := fileobj.read(1024 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise FileTooLarge(max_bytes=max_bytes)
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest(), size


def submit_document(
    session: Session,
    store: BlobStore,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    fileobj: IO[bytes],
    filename: str | None,
    options: JobOptions,
    password: str | None,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Check an upload against the tenant's tier and quotas and its type from its content, store it, record
    the job (counted in the usage ledger, audited) and enqueue it after commit; the job, and whether it is
    an earlier job replayed for the same ``idempotency_key`` (then nothing is stored, counted or sent)."""
    tier = settings.tiers.get(principal.tier)
    now = utcnow()
    fileobj.seek(0)
    kind = sniff(fileobj.read(SNIFF_BYTES))
    digest, size = _hash_and_size(fileobj, min(settings.limits.max_upload_bytes, tier.max_file_bytes))
    if idempotency_key is not None:
        earlier = repo.get_job_by_idempotency_key(session, principal.tenant_id, idempotency_key)
        if earlier is not None:
            return _replayed(earlier, digest, options), True
    usage.check_document_quota(session, principal.tenant_id, principal.tier, tier, now)
    job_id = str(uuid.uuid4())
    store.put_file(source_key(job_id), fileobj, content_type=kind.media_type)
    try:
        # Counted after the upload is stored, so the ledger row is locked only briefly.
        usage.take_document(session, principal.tenant_id, principal.tier, tier, now)
    except QuotaExceeded:
        store.delete_prefix(f"jobs/{job_id}/")
        raise
    job = Job(
        id=job_id,
        tenant_id=principal.tenant_id,
        priority=tier.priority,
        max_pages=min(settings.limits.max_pages, tier.max_pages),
        state=JobState.QUEUED,
        filename=sanitize_filename(filename),
        kind=kind.value,
        size_bytes=size,
        sha256=digest,
        source_key=source_key(job_id),
        options=options.model_dump(mode="json"),
        document_password=password or None,
        idempotency_key=idempotency_key,
    )
    repo.add_job(session, job)
    try:
        session.flush()
    except IntegrityError as exc:
        # Only the unique Idempotency-Key can collide: a concurrent request with the same key got there
        # first. This one rolls back (its quota count too); a retry replays the other's job.
        store.delete_prefix(f"jobs/{job_id}/")
        raise Conflict(
            "A request with this Idempotency-Key is in progress; retry shortly to get its job.",
            retry_after_s=1,
        ) from exc
    audit.record(
        session,
        actor,
        audit.JOB_CREATED,
        target=job_id,
        tenant_id=principal.tenant_id,
        details={"filename": job.filename, "size_bytes": size, "kind": kind.value, "sha256": digest},
    )
    queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id], priority=tier.priority)
    return job, False


def _replayed(earlier: Job, digest: str, options: JobOptions) -> Job:
    """The job an Idempotency-Key already made, if this request is the same submission."""
    if earlier.sha256 != digest or earlier.options != options.model_dump(mode="json"):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for another document or other options; use a new key.",
            job_id=earlier.id,
        )
    return earlier


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """A tenant's job by id; NotFound if there is none, or it is another tenant's."""
    job = repo.get_tenant_job(session, tenant_id, job_id) if _is_uuid(job_id) else None
    if job is None:
        raise NotFound("No job with this id.", job_id=job_id)
    return job


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def encode_cursor(job: Job) -> str:
    """An opaque cursor pointing after ``job``."""
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("cursor time without a zone")
        return created_at, job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("The cursor is not valid.", field="cursor") from exc


def list_jobs(
    session: Session, tenant_id: str, *, state: JobState | None, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """A page of a tenant's jobs, newest first, and the cursor of the next page."""
    after = _decode_cursor(cursor) if cursor else None
    jobs = list(repo.list_jobs(session, tenant_id=tenant_id, state=state, limit=limit + 1, after=after))
    next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return jobs[:limit], next_cursor


def cancel_job(session: Session, tenant_id: str, job_id: str, *, actor: Actor) -> Job:
    """Ask a job to stop at the next page boundary; finished pages are kept."""
    job = get_job(session, tenant_id, job_id)
    if job.state in (JobState.SUCCEEDED, JobState.FAILED):
        raise Conflict("The job has already finished.", state=job.state)
    if job.state != JobState.CANCELLED:
        audit.record(session, actor, audit.JOB_CANCELLED, target=job_id, tenant_id=tenant_id)
    repo.request_cancel(session, job_id)
    session.flush()
    session.refresh(job)
    return job


def get_page(session: Session, tenant_id: str, job_id: str, number: int) -> Page:
    """One page of a tenant's job by its 1-based number."""
    job = get_job(session, tenant_id, job_id)
    page = repo.get_page(session, job_id, number - 1) if number >= 1 else None
    if page is None:
        raise NotFound(
            "This job has no such page: pages are numbered from 1 as in the document, and only pages in the "
            "job's page range exist.",
            page=number,
            page_count=job.page_count,
        )
    return page


def open_result(
    session: Session, store: BlobStore, tenant_id: str, job_id: str, fmt: OutputFormat, *, actor: Actor
) -> tuple[Iterator[bytes], str]:
    """The stored result of a tenant's finished job in ``fmt`` as a byte stream (audited), and its type."""
    job = get_job(session, tenant_id, job_id)
    if job.state not in (JobState.SUCCEEDED, JobState.CANCELLED):
        raise Conflict(
            f"The result is not available: the job is {job.state}.",
            state=job.state,
        )
    if job.pages_total is None:
        raise Conflict("The job was cancelled before any page was read; it has no result.", state=job.state)
    if fmt.value not in job.options.get("formats", []):
        raise NotFound("This format was not requested for the job.", format=fmt.value)
    audit.record(
        session, actor, audit.RESULT_READ, target=job_id, tenant_id=tenant_id, details={"format": fmt.value}
    )
    return store.iter_chunks(result_key(job_id, fmt)), RESULT_MEDIA_TYPES[fmt]
