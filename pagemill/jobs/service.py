"""The job service for the API side: submit, read, list, cancel, fetch results. Never commits."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.db import SessionScope
from pagemill.documents.kinds import SNIFF_BYTES, DocumentKind, sniff
from pagemill.errors import (
    Conflict,
    FileTooLarge,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)
from pagemill.jobs import repository as repo
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.models import Job, JobState, Page
from pagemill.models.base import utcnow
from pagemill.secret_box import seal_secret
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy import audit, usage
from pagemill.tenancy.principal import Actor, Principal

log = logging.getLogger(__name__)

AfterResponse = Callable[..., None]
"""Schedules ``func(*args)`` to run once the response has been sent (``BackgroundTasks.add_task``)."""

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


# PDF passwords are at most 127 bytes (AES-256, revision 6) or 32 (older handlers); anything far longer is
# not a password, and is refused before it is sealed and stored.
MAX_PASSWORD_CHARS = 1024


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
    sessions: SessionScope,
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
    after_response: AfterResponse | None = None,
) -> tuple[Job, bool]:
    """Check an upload against the tenant's tier and quotas and its type from its content, store it, record
    the job (counted in the usage ledger, audited) and enqueue it after commit; the job, and whether it is
    an earlier job replayed for the same ``idempotency_key`` (then nothing is stored, counted or sent).

    Two short transactions from ``sessions`` (a read-only check, then the write) with the upload stored
    between them: no connection is held while the bytes are hashed or stored, so concurrent uploads do not
    exhaust the pool or queue behind each other for SQLite's write lock.

    With ``after_response`` the ingest task is published through it, after the 202 has gone out, instead of
    inside the request: the answer does not wait for the broker (a SQLite broker's commit, a Redis round
    trip, or a Redis outage's connection timeout). Nothing is lost either way: the job row is committed
    first, and a job whose message never arrives is re-enqueued by the sweeper.
    """
    tier = settings.tiers.get(principal.tier)
    now = utcnow()
    if password and len(password) > MAX_PASSWORD_CHARS:
        # Named, never echoed: details must not carry the password.
        raise ValidationFailed(f"password is longer than {MAX_PASSWORD_CHARS} characters.", field="password")
    # Sealed first: without a key the request is refused before anything is stored or counted.
    sealed_password = seal_secret(password, settings) if password else None
    fileobj.seek(0)
    kind = sniff(fileobj.read(SNIFF_BYTES))
    digest, size = _hash_and_size(fileobj, min(settings.limits.max_upload_bytes, tier.max_file_bytes))
    with sessions() as session:
        # A short read-only transaction: a replay, or a quota already used up, is answered before storing.
        if idempotency_key is not None:
            earlier = repo.get_job_by_idempotency_key(session, principal.tenant_id, idempotency_key)
            if earlier is not None:
                return _replayed(earlier, digest, options), True
        usage.check_document_quota(session, principal.tenant_id, principal.tier, tier, now)
    job_id = str(uuid.uuid4())
    # Stored while no database connection is held: a slow disk or S3 must not keep connections (or SQLite's
    # one write lock) from other requests.
    store.put_file(source_key(job_id), fileobj, content_type=kind.media_type)
    try:
        with sessions() as session:
            job = _record_job(
                session,
                settings,
                job_id=job_id,
                principal=principal,
                actor=actor,
                now=now,
                filename=filename,
                kind=kind,
                size=size,
                digest=digest,
                options=options,
                sealed_password=sealed_password,
                idempotency_key=idempotency_key,
                publish_after_commit=after_response is None,
            )
    except BaseException:
        # Not recorded (quota used up meanwhile, a concurrent Idempotency-Key, the database): no orphan blob.
        store.delete_prefix(f"jobs/{job_id}/")
        raise
    if after_response is not None:
        after_response(publish_ingest, job_id, tier.priority)
    return job, False


def publish_ingest(job_id: str, priority: int) -> None:
    """Publish a committed job's ingest task. A failure is logged, not raised: the job row is stored, and
    the stalled job sweeper re-enqueues it (as ``queue.enqueue_after_commit`` does)."""
    try:
        queue.send_task(queue.INGEST_JOB, [job_id], priority=priority)
    except Exception:
        log.exception("publish of %s[%r] failed; the sweeper will re-enqueue it", queue.INGEST_JOB, job_id)


def _record_job(
    session: Session,
    settings: Settings,
    *,
    job_id: str,
    principal: Principal,
    actor: Actor,
    now: datetime,
    filename: str | None,
    kind: DocumentKind,
    size: int,
    digest: str,
    options: JobOptions,
    sealed_password: str | None,
    idempotency_key: str | None,
    publish_after_commit: bool = True,
) -> Job:
    """The write transaction of a submission: count it in the ledger, insert and audit the job, and (with
    ``publish_after_commit``) enqueue it after commit. Milliseconds: on SQLite the write lock is held only
    for this."""
    tier = settings.tiers.get(principal.tier)
    usage.take_document(session, principal.tenant_id, principal.tier, tier, now)
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
        document_password_sealed=sealed_password,
        idempotency_key=idempotency_key,
    )
    repo.add_job(session, job)
    try:
        session.flush()
    except IntegrityError as exc:
        # Only the unique Idempotency-Key can collide: a concurrent request with the same key got there
        # first. This one rolls back (its quota count too); a retry replays the other's job.
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
    if publish_after_commit:
        queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id], priority=tier.priority)
    return job


def _replayed(earlier: Job, digest: str, options: JobOptions) -> Job:
    """The job an Idempotency-Key already made, if this request is the same submission."""
    if earlier.sha256 != digest or earlier.options != options.model_dump(mode="json"):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for another document or other options; use a new key.",
            job_id=earlier.id,
        )
    return earlier


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
        # In UTC, as stored; an offset that takes the time past year 1 or 9999 is no cursor of ours.
        return created_at.astimezone(UTC), job_id
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
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
    """Ask a job to stop at the next page boundary; finished pages are kept.

    A queued job ends ``cancelled`` at once. A running job is stopped by its workers between pages; one
    that no worker is advancing (lost messages, pages waiting for an absent pool) is ended ``cancelled`` by
    the sweeper once it has made no progress for ``worker.cancel_grace_s`` (pagemill.jobs.sweeper).
    """
    job = get_job(session, tenant_id, job_id)
    if job.state in (JobState.SUCCEEDED, JobState.FAILED):
        raise Conflict("The job has already finished.", state=job.state)
    if job.state != JobState.CANCELLED:
        audit.record(session, actor, audit.JOB_CANCELLED, target=job.id, tenant_id=tenant_id)
    repo.request_cancel(session, job.id)
    session.flush()
    session.refresh(job)
    return job


def get_page(session: Session, tenant_id: str, job_id: str, number: int) -> Page:
    """One page of a tenant's job by its 1-based number."""
    job = get_job(session, tenant_id, job_id)
    page = repo.get_page(session, job.id, number - 1) if number >= 1 else None
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
    audit.record(
        session, actor, audit.RESULT_READ, target=job.id, tenant_id=tenant_id, details={"format": fmt.value}
    )
    return store.iter_chunks(result_key(job.id, fmt)), RESULT_MEDIA_TYPES[fmt]
