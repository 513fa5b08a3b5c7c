"""Submitting documents: check a document against the tenant's tier and quotas and its type from its
content, store it, record the job (counted in the usage ledger, audited) and enqueue it. Never commits."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.db import SessionScope
from pagemill.documents.kinds import SNIFF_BYTES, DocumentKind, sniff, sniff_file
from pagemill.errors import (
    Conflict,
    FileTooLarge,
    IdempotencyKeyReused,
    ValidationFailed,
)
from pagemill.events import service as events
from pagemill.events.types import EventType
from pagemill.jobs import cache
from pagemill.jobs import repository as repo
from pagemill.jobs.options import JobOptions, check_fits_kind
from pagemill.jobs.service import source_key
from pagemill.models import Job, JobState
from pagemill.models.base import utcnow
from pagemill.observability import job_metrics
from pagemill.secret_box import seal_secret
from pagemill.settings import Settings, TierSettings
from pagemill.storage import BlobStore, get_blob_store
from pagemill.tenancy import audit, usage
from pagemill.tenancy.principal import Actor, Principal

log = logging.getLogger(__name__)

AfterResponse = Callable[..., None]
"""Schedules ``func(*args)`` to run once the response has been sent (``BackgroundTasks.add_task``)."""

# PDF passwords are at most 127 bytes (AES-256, revision 6) or 32 (older handlers); anything far longer is
# not a password, and is refused before it is sealed and stored.
MAX_PASSWORD_CHARS = 1024


def seal_password(password: str | None, settings: Settings) -> str | None:
    """A submission's document password, checked and sealed (pagemill.secret_box); None without one.

    ValidationFailed when it is longer than MAX_PASSWORD_CHARS (named, never echoed: details must not carry
    it); SecretsNotConfigured without a key, before anything is stored or counted."""
    if not password:
        return None
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValidationFailed(f"password is longer than {MAX_PASSWORD_CHARS} characters.", field="password")
    return seal_secret(password, settings)


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
    use_cache: bool = True,
    callback_url: str | None = None,
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

    With ``use_cache`` (and ``cache.enabled``) a document this tenant had read with the same options
    within ``cache.ttl_s`` gets those results (read in place): the job is answered succeeded, ``cached_from``
    set, and nothing is enqueued (pagemill.jobs.cache).

    ``callback_url`` (checked by the caller: pagemill.webhooks.service.checked_callback_url) receives the
    job's events.
    """
    tier = settings.tiers.get(principal.tier)
    now = utcnow()
    # Sealed first: without a key the request is refused before anything is stored or counted.
    sealed_password = seal_password(password, settings)
    kind = sniff_file(fileobj)
    check_fits_kind(options, kind)
    digest, size = _hash_and_size(fileobj, min(settings.limits.max_upload_bytes, tier.max_file_bytes))
    with sessions() as session:
        # A short read-only transaction: a replay, or a quota already used up, is answered before storing.
        earlier = replay_or_check_quota(session, principal, tier, now, idempotency_key, digest, options)
        if earlier is not None:
            return earlier, True
        source = (
            cache.find_source(
                session,
                settings,
                tenant_id=principal.tenant_id,
                sha256=digest,
                options=options,
                max_pages=min(settings.limits.max_pages, tier.max_pages),
                now=now,
            )
            if use_cache
            else None
        )
    job_id = str(uuid.uuid4())

    # Stored while no database connection is held: a slow disk or S3 must not keep connections (or SQLite's
    # one write lock) from other requests.
    def store_original() -> None:
        store.put_file(source_key(job_id), fileobj, content_type=kind.media_type)

    try:
        source = store_unless_cached(source, store_original)
        with sessions() as session:
            job = record_job(
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
                publish_after_commit=after_response is None and source is None,
                cached_from=source,
                callback_url=callback_url,
            )
        read_afresh_if_not_adopted(job, source, store_original, tier.priority, publish=after_response is None)
    except BaseException:
        # Not recorded (quota used up meanwhile, a concurrent Idempotency-Key, the database, the store): no
        # orphan blob (an original stored for a job that is not recorded).
        store.delete_prefix(f"jobs/{job_id}/")
        raise
    if after_response is not None and job.cached_from is None:
        after_response(publish_ingest, job_id, tier.priority)
    return job, False


def store_unless_cached(
    source: cache.CacheSource | None, store_original: Callable[[], object]
) -> cache.CacheSource | None:
    """Before the job is recorded: store the original unless the submission is a cache hit; the source
    still to adopt, or None.

    A cache hit stores no original and copies nothing: nothing reads an original (the job's pages and
    results are the source's, and no page work runs for it), and on S3 its upload was most of a hit's
    time. Should the adoption fail, the original is stored then (:func:`read_afresh_if_not_adopted`)."""
    if source is None:
        store_original()
    return source


def read_afresh_if_not_adopted(
    job: Job,
    source: cache.CacheSource | None,
    store_original: Callable[[], object],
    priority: int,
    *,
    publish: bool,
) -> None:
    """After the job is recorded: a job whose source lost its pages between the lookup and the answer is
    read afresh, from its own original, stored before anyone is told to read it (``publish``: told here;
    otherwise by the caller, after the response)."""
    if source is None or job.cached_from is not None:
        return
    store_original()
    if publish:
        publish_ingest(job.id, priority)


def inspect_upload(
    fileobj: IO[bytes], settings: Settings, tier_name: str, options: JobOptions | None = None
) -> tuple[DocumentKind, str, int]:
    """An upload's kind (sniffed from its content), SHA-256 and size; EmptyFile, UnsupportedType,
    FileTooLarge (over ``limits.max_upload_bytes`` or the tier's file size) or ValidationFailed (``options``
    that do not fit its kind: subtitles of a document) when it is refused."""
    tier = settings.tiers.get(tier_name)
    kind = sniff_file(fileobj)
    if options is not None:
        check_fits_kind(options, kind)
    digest, size = _hash_and_size(fileobj, min(settings.limits.max_upload_bytes, tier.max_file_bytes))
    return kind, digest, size


def submit_stored_document(
    sessions: SessionScope,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    job_id: str,
    head: bytes,
    size: int,
    digest: str,
    filename: str | None,
    options: JobOptions,
    sealed_password: str | None,
    idempotency_key: str | None = None,
    before_record: Callable[[Session], None] | None = None,
    after_response: AfterResponse | None = None,
    callback_url: str | None = None,
) -> tuple[Job, bool]:
    """Make the job ``job_id`` of an original already stored at ``source_key(job_id)`` (a finished tus
    upload) with the checks of :func:`submit_document`: type sniffed from the content (``head``, its first
    ``SNIFF_BYTES``), the tier's file size, the Idempotency-Key (a replay returns the earlier job and True),
    the quota, counted and audited by :func:`record_job`. A refused job leaves the stored original alone: it
    belongs to the upload.

    ``before_record`` runs first in the write transaction (an upload claims itself there, so that one
    upload never becomes two jobs).
    """
    tier = settings.tiers.get(principal.tier)
    now = utcnow()
    cap = min(settings.limits.max_upload_bytes, tier.max_file_bytes)
    if size > cap:
        raise FileTooLarge(max_bytes=cap)
    kind = sniff(head[:SNIFF_BYTES], lambda: _stored_original(job_id))
    check_fits_kind(options, kind)
    with sessions() as session:
        # A short read-only transaction, as in submit_document: a replay or a spent quota answered first.
        earlier = replay_or_check_quota(session, principal, tier, now, idempotency_key, digest, options)
        if earlier is not None:
            return earlier, True
    with sessions() as session:
        if before_record is not None:
            before_record(session)
        job = record_job(
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
            callback_url=callback_url,
        )
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


def record_job(
    session: Session,
    settings: Settings,
    *,
    job_id: str,
    principal: Principal,
    actor: Actor,
    now: datetime,
    filename: str | None,
    kind: DocumentKind | None,
    size: int | None,
    digest: str | None,
    options: JobOptions,
    sealed_password: str | None,
    idempotency_key: str | None,
    publish_after_commit: bool = True,
    batch_id: str | None = None,
    cached_from: cache.CacheSource | None = None,
    source_url: str | None = None,
    callback_url: str | None = None,
) -> Job:
    """The write transaction of a submission: count it in the ledger, insert and audit the job, and (with
    ``publish_after_commit``) enqueue it after commit. Milliseconds: on SQLite the write lock is held only
    for this.

    With ``cached_from`` (whose result blobs are already copied to this job's keys) the source's pages are
    copied and the job ends succeeded here, with nothing enqueued; if the source stopped being usable, the
    job is processed afresh instead.

    A URL job (``source_url``) has no document yet: no name, kind, size or digest; the worker fetches it
    (pagemill.jobs.url_source) within the tier's file size, fixed here."""
    tier = settings.tiers.get(principal.tier)
    job = Job(
        id=job_id,
        tenant_id=principal.tenant_id,
        priority=tier.priority,
        max_pages=min(settings.limits.max_pages, tier.max_pages),
        state=JobState.QUEUED,
        filename=None if source_url is not None else sanitize_filename(filename),
        kind=None if kind is None else kind.value,
        size_bytes=size,
        sha256=digest,
        source_key=source_key(job_id),
        source_url=source_url,
        source_max_bytes=min(settings.limits.max_upload_bytes, tier.max_file_bytes) if source_url else None,
        options=options.model_dump(mode="json"),
        document_password_sealed=sealed_password,
        idempotency_key=idempotency_key,
        tier=principal.tier,
        batch_id=batch_id,
        callback_url=callback_url,
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
    job_metrics.count_submitted(session, job.kind)
    audit.record(
        session,
        actor,
        audit.JOB_CREATED,
        target=job_id,
        tenant_id=principal.tenant_id,
        details={
            "filename": job.filename,
            "size_bytes": size,
            "kind": None if kind is None else kind.value,
            "sha256": digest,
            **({"source_url": source_url} if source_url is not None else {}),
        },
    )
    # After the inserts: on Postgres the tenant's usage rows stay locked from here to the commit, and every
    # other submission of the tenant waits for them; taken first, they were locked across the inserts too.
    usage.take_document(session, principal.tenant_id, principal.tier, tier, now)
    events.job_event(session, job_id, EventType.JOB_QUEUED, settings=settings)
    if cached_from is not None and cache.adopt(session, job, cached_from, now):
        # A cached job tells its story like any other: queued, started, succeeded.
        events.job_event(session, job_id, EventType.JOB_STARTED, settings=settings)
        events.job_ended(session, job_id, JobState.SUCCEEDED, settings=settings)
        return job
    if publish_after_commit:
        queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id], priority=tier.priority)
    return job


def replay_or_check_quota(
    session: Session,
    principal: Principal,
    tier: TierSettings,
    now: datetime,
    idempotency_key: str | None,
    digest: str,
    options: JobOptions,
) -> Job | None:
    """Before anything is stored: the earlier job an ``idempotency_key`` made for this same submission
    (IdempotencyKeyReused for another one), else None once the tenant's quota is known to have room
    (QuotaExceeded otherwise; the document is counted later, by :func:`record_job`)."""
    if idempotency_key is not None:
        earlier = repo.get_job_by_idempotency_key(session, principal.tenant_id, idempotency_key)
        if earlier is not None:
            return replayed_job(earlier, digest, options)
    usage.check_document_quota(session, principal.tenant_id, principal.tier, tier, now)
    return None


def replayed_job(earlier: Job, digest: str, options: JobOptions, source_url: str | None = None) -> Job:
    """The job an Idempotency-Key already made, if this request is the same submission: the same document
    (by digest; a URL job: the same URL, whatever it served) and the same options."""
    same_document = earlier.source_url == source_url and (source_url is not None or earlier.sha256 == digest)
    if not same_document or earlier.options != options.model_dump(mode="json"):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for another document or other options; use a new key.",
            job_id=earlier.id,
        )
    return earlier


@contextmanager
def _stored_original(job_id: str) -> Iterator[IO[bytes]]:
    """The stored original of ``job_id`` as a local file, for the rare upload whose first bytes do not tell
    its type (a zip whose directory must be read)."""
    with tempfile.TemporaryDirectory(prefix="pagemill-sniff-") as folder:
        path = Path(folder) / "original"
        get_blob_store().download_to(source_key(job_id), path)
        with path.open("rb") as fileobj:
            yield fileobj
