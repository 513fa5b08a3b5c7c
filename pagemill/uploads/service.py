"""The upload service: create, look at, terminate and submit tus uploads (the PATCH itself is in
pagemill.uploads.patch). Never commits beyond its own short transactions (``sessions``); blocking: the API
calls it from worker threads.

An upload becomes a job through :func:`pagemill.jobs.submission.submit_stored_document`, the same checks as a
multipart POST, either at its last byte (:mod:`pagemill.uploads.patch`) or later with
:func:`submit_upload` (POST /api/v1/documents with ``upload_id``).
"""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from pagemill.db import SessionScope
from pagemill.documents.kinds import SNIFF_BYTES
from pagemill.errors import (
    EmptyFile,
    FileTooLarge,
    NotFound,
    PagemillError,
    UploadAlreadyUsed,
    UploadExpired,
    UploadIncomplete,
    UploadLocked,
)
from pagemill.jobs import reading, submission
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs.options import JobOptions
from pagemill.models import Job, Upload, UploadState
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy.principal import Actor, Principal
from pagemill.uploads import repository as repo
from pagemill.uploads.metadata import decode_header, parse_metadata
from pagemill.uploads.schemas import UploadInfo, upload_cap
from pagemill.uploads.storage import UploadStore, make_upload_store
from pagemill.webhooks.service import checked_callback_url

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Creation, status, termination


def create_upload(
    sessions: SessionScope,
    store: BlobStore,
    settings: Settings,
    *,
    principal: Principal,
    length: int | None,
    metadata: str | None,
    idempotency_key: str | None = None,
) -> UploadInfo:
    """Create an upload of ``length`` bytes (None: deferred, sent with a later PATCH). Its job options
    (Upload-Metadata) are checked now, so a bad one fails before any byte is sent; FileTooLarge (413)
    over the caller's cap, EmptyFile for zero bytes (nothing to make a job of)."""
    cap = upload_cap(settings, principal)
    if length is not None and length > cap:
        raise FileTooLarge(max_bytes=cap, length=length)
    if length == 0:
        raise EmptyFile()
    meta = parse_metadata(metadata)
    reading.require_engines_configured(meta.options, settings)
    # Checked now, as the form field is at POST: a refused URL fails the creation, before any byte.
    callback_url = checked_callback_url(sessions, settings, principal.tenant_id, meta.callback_url)
    now = utcnow()
    upload = Upload(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant_id,
        state=UploadState.RECEIVING,
        length=length,
        upload_offset=0,
        job_id=str(uuid.uuid4()),
        meta={
            "filename": meta.filename,
            "options": meta.options.model_dump(mode="json"),
            "submit": meta.submit,
            "password_sealed": submission.seal_password(meta.password, settings),
            "idempotency_key": idempotency_key,
            "header": _echoed(metadata),
            "callback_url": callback_url,
        },
        parts=[],
        pending_bytes=0,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=settings.uploads.expire_after_s),
    )
    uploads = make_upload_store(store, settings)
    # Storage first, while no connection is held; undone if the row cannot be written.
    upload.multipart_id = uploads.start(upload.id, upload.job_id, length)
    if upload.multipart_id is not None:
        # Each PATCH's parts carry a checksum of this algorithm, and the completion lists them.
        upload.meta["part_checksum"] = uploads.part_checksum
    try:
        with sessions() as session:
            repo.add_upload(session, upload)
            session.flush()
            info = UploadInfo.of(upload)
    except BaseException:
        uploads.remove(upload.id, upload.job_id, upload.multipart_id, keep_source=False)
        raise
    return info


def _echoed(header: str | None) -> str | None:
    """Upload-Metadata to echo on HEAD: as sent, less the password (never shown back)."""
    pairs = [
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in decode_header(header).items()
        if key != "password"
    ]
    return ",".join(pairs) or None


def _canonical(upload_id: str) -> str | None:
    try:
        return str(uuid.UUID(upload_id))
    except ValueError:
        return None


def owned(session: Session, principal: Principal, upload_id: str, *, now: datetime) -> Upload:
    """The caller's live upload: NotFound for another tenant's, a deleted one or none; UploadExpired."""
    canonical = _canonical(upload_id)
    upload = repo.get_upload(session, canonical) if canonical else None
    if upload is None or upload.tenant_id != principal.tenant_id or upload.state == UploadState.DELETED:
        raise NotFound("No upload with this id.", upload_id=upload_id)
    if upload.expires_at <= now:
        raise UploadExpired(upload_id=upload.id, expired_at=upload.expires_at.isoformat())
    return upload


def get_upload(sessions: SessionScope, principal: Principal, upload_id: str) -> UploadInfo:
    """The caller's upload (HEAD): offset, length, expiry."""
    with sessions() as session:
        return UploadInfo.of(owned(session, principal, upload_id, now=utcnow()))


def terminate_upload(
    sessions: SessionScope, store: BlobStore, settings: Settings, *, principal: Principal, upload_id: str
) -> None:
    """Delete an upload (tus termination): 404 from then on, its bytes and S3 multipart upload removed now
    (or, if storage fails, by the sweeper). An upload that is a job already cannot be deleted: its bytes
    are the job's original (Conflict)."""
    with sessions() as session:
        upload = owned(session, principal, upload_id, now=utcnow())
        if upload.state == UploadState.SUBMITTED:
            raise UploadAlreadyUsed(
                "This upload is a job already; delete the job's data with DELETE /api/v1/jobs/{id}.",
                job_id=upload.job_id,
            )
        if not repo.mark_deleted(session, upload.id):
            raise UploadLocked(retry_after_s=1)
        target = (upload.id, upload.job_id, upload.multipart_id)
    remove_storage(sessions, make_upload_store(store, settings), *target)


def remove_storage(
    sessions: SessionScope, uploads: UploadStore, upload_id: str, job_id: str, multipart_id: str | None
) -> None:
    """Remove a deleted upload's storage, then its row (left for the sweeper if storage fails)."""
    try:
        uploads.remove(upload_id, job_id, multipart_id, keep_source=False)
    except PagemillError:
        log.warning("upload %s: storage not removed yet; the sweeper retries", upload_id, exc_info=True)
        return
    with sessions() as session:
        repo.delete_upload(session, upload_id)


# --------------------------------------------------------------------------------------------------
# Becoming a job


def make_job(
    sessions: SessionScope,
    store: BlobStore,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    upload_id: str,
    job_id: str,
    head: bytes | None,
    size: int,
    digest: str,
    meta: dict[str, Any],
    options: JobOptions,
    sealed_password: str | None,
    after_response: submission.AfterResponse | None,
    callback_url: str | None = None,
) -> tuple[Job, bool]:
    def claim(session: Session) -> None:
        # In the job's own transaction: of two concurrent submissions of one upload, one makes the job.
        if not repo.mark_submitted(session, upload_id, job_id):
            raise UploadAlreadyUsed(job_id=job_id)

    if head is None or len(head) < min(size, SNIFF_BYTES):
        head = make_upload_store(store, settings).read_head(job_id, SNIFF_BYTES)
    return submission.submit_stored_document(
        sessions,
        settings,
        principal=principal,
        actor=actor,
        job_id=job_id,
        head=head,
        size=size,
        digest=digest,
        filename=meta.get("filename"),
        options=options,
        sealed_password=sealed_password,
        idempotency_key=meta.get("idempotency_key"),
        before_record=claim,
        after_response=after_response,
        callback_url=callback_url,
    )


def submit_upload(
    sessions: SessionScope,
    store: BlobStore,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    upload_id: str,
    options: JobOptions,
    password: str | None,
    idempotency_key: str | None = None,
    after_response: submission.AfterResponse | None = None,
    callback_url: str | None = None,
) -> tuple[Job, bool]:
    """Make the job of a finished upload (POST /api/v1/documents with ``upload_id``); the job, and whether
    it is the one the upload became before (a replay).

    An upload becomes at most one job: asked again with the same options, the same job is answered (True,
    as an Idempotency-Key replay is); with other options, UploadAlreadyUsed (409). UploadIncomplete (409)
    while bytes are missing; NotFound/UploadExpired (404/410).
    """
    with sessions() as session:
        upload = owned(session, principal, upload_id, now=utcnow())
        if upload.state == UploadState.RECEIVING:
            raise UploadIncomplete(offset=upload.upload_offset, length=upload.length)
        if upload.state == UploadState.SUBMITTED:
            job = jobs_repo.get_job(session, upload.job_id)
            if job is not None and job.options == options.model_dump(mode="json"):
                return job, True
            raise UploadAlreadyUsed(job_id=upload.job_id)
        target = (upload.id, upload.job_id, upload.upload_offset, upload.sha256 or "", dict(upload.meta))
        head = upload.head
    if idempotency_key is not None:
        target[4]["idempotency_key"] = idempotency_key
    # The POST's own callback_url (checked by the route) wins over the one the upload was created with.
    callback_url = callback_url or target[4].get("callback_url")
    sealed = submission.seal_password(password, settings) if password else target[4].get("password_sealed")
    return make_job(
        sessions,
        store,
        settings,
        principal=principal,
        actor=actor,
        upload_id=target[0],
        job_id=target[1],
        head=head,
        size=target[2],
        digest=target[3],
        meta=target[4],
        options=options,
        sealed_password=sealed,
        after_response=after_response,
        callback_url=callback_url,
    )
