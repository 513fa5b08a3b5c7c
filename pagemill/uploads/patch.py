"""One PATCH of a tus upload, in three steps with no transaction open in between: :func:`begin_patch`
locks the upload (a fenced UPDATE, no row lock held while the body arrives), :meth:`Patch.write` streams
the bytes to storage (renewing the lock now and then), and :meth:`Patch.finish` keeps or discards them and
records the new offset fenced on the lock and the offset it started from. The last byte makes the upload a
job (:func:`pagemill.uploads.service.make_job`). Blocking: the API calls it from worker threads.

Why a lease rather than ``SELECT ... FOR UPDATE``: a PATCH body takes seconds to arrive, and a row lock
would hold a database connection (and on SQLite the one write lock of the whole database) for all of it.
The lease is taken and released by single conditional UPDATEs; a second PATCH meanwhile is told 423; a
holder that died lets go after ``uploads.lock_lease_s``, and its late writes are refused by the fence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
import uuid
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from pagemill.db import SessionScope
from pagemill.documents.kinds import SNIFF_BYTES
from pagemill.errors import (
    ChecksumAlgorithmUnsupported,
    ChecksumMismatch,
    FileTooLarge,
    MalformedRequest,
    PagemillError,
    UploadLocked,
    UploadOffsetMismatch,
)
from pagemill.jobs import service as jobs_service
from pagemill.jobs import submission
from pagemill.jobs.options import JobOptions
from pagemill.models import Upload, UploadState
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy.principal import Actor, Principal
from pagemill.uploads import repository as repo
from pagemill.uploads.schemas import CHECKSUM_ALGORITHMS, PatchResult, UploadInfo, upload_cap
from pagemill.uploads.service import make_job, owned
from pagemill.uploads.storage import ChunkWriter, StoredUpload, UploadStore, make_upload_store

# The SHA-256 of each upload so far, kept by the replica that received its bytes: when the next PATCH
# lands on the same replica at the same offset, the hash goes on from there and the original is never read
# back. A PATCH on another replica (or after a restart) finds none, and the hash is computed once, from
# storage, when the upload completes. Bounded: the least recently used are dropped.
_RUNNING_HASHES: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_HASHES_LOCK = threading.Lock()
_MAX_RUNNING_HASHES = 1024


def _running_hash(upload_id: str, offset: int) -> Any:
    with _HASHES_LOCK:
        entry = _RUNNING_HASHES.get(upload_id)
    if offset == 0:
        return hashlib.sha256()
    if entry is not None and entry[0] == offset:
        return entry[1]
    return None


def _remember_hash(upload_id: str, offset: int, hasher: Any) -> None:
    """Keep the hash at ``offset`` for the next PATCH (None: forget it, the upload is complete)."""
    with _HASHES_LOCK:
        if hasher is None:
            _RUNNING_HASHES.pop(upload_id, None)
            return
        _RUNNING_HASHES[upload_id] = (offset, hasher)
        _RUNNING_HASHES.move_to_end(upload_id)
        while len(_RUNNING_HASHES) > _MAX_RUNNING_HASHES:
            _RUNNING_HASHES.popitem(last=False)


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum as (algorithm, digest); ChecksumAlgorithmUnsupported or MalformedRequest (400)."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise ChecksumAlgorithmUnsupported(algorithm=algorithm, supported=list(CHECKSUM_ALGORITHMS))
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise MalformedRequest("Upload-Checksum's digest is not base64.") from exc
    if len(digest) != hashlib.new(algorithm.lower()).digest_size:
        raise MalformedRequest("Upload-Checksum's digest has the wrong length for its algorithm.")
    return algorithm.lower(), digest


class Patch:
    """One PATCH holding its upload's lock. Call :meth:`write` for the body's bytes in order, then
    :meth:`finish` (keep) or :meth:`abandon` (discard); each exactly once, from worker threads."""

    def __init__(
        self,
        sessions: SessionScope,
        store: BlobStore,
        settings: Settings,
        *,
        principal: Principal,
        actor: Actor,
        upload: Upload,
        token: str,
        writer: ChunkWriter,
        uploads: UploadStore,
        checksum: tuple[str, bytes] | None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.settings = settings
        self.principal = principal
        self.actor = actor
        self.upload_id = upload.id
        self.job_id = upload.job_id
        self.meta = dict(upload.meta)
        self.start = upload.upload_offset
        self.length = upload.length
        self.expires_at = upload.expires_at
        self.old_pending = upload.pending_key
        self.token = token
        self.writer = writer
        self.uploads = uploads
        self.cap = upload_cap(settings, principal)
        self.received = 0
        self.checksum = checksum
        self._check = hashlib.new(checksum[0]) if checksum else None
        running = _running_hash(upload.id, upload.upload_offset)
        # A copy: a discarded PATCH must not leave its bytes in the hash.
        self._sha256 = running.copy() if running is not None else None
        self._renewed = time.monotonic()
        self._done = False
        # The first SNIFF_BYTES of the upload, completed by this PATCH if it starts within them.
        self._head = bytearray(upload.head or b"") if upload.upload_offset < SNIFF_BYTES else None

    def write(self, data: bytes) -> None:
        """Store the next bytes. FileTooLarge when they pass the upload's length (or, with a deferred
        length, the caller's cap); UploadLocked if the lock was lost."""
        end = self.start + self.received + len(data)
        if self.length is not None and end > self.length:
            raise FileTooLarge("The body goes past Upload-Length.", max_bytes=self.length)
        if end > self.cap:
            raise FileTooLarge(max_bytes=self.cap)
        self.writer.write(data)
        self.received += len(data)
        if self._head is not None and len(self._head) < SNIFF_BYTES:
            self._head += data[: SNIFF_BYTES - len(self._head)]
        if self._check is not None:
            self._check.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        lease = self.settings.uploads.lock_lease_s
        if time.monotonic() - self._renewed > lease / 4:
            with self.sessions() as session:
                if not repo.renew_lock(
                    session, self.upload_id, self.token, utcnow() + timedelta(seconds=lease)
                ):
                    raise UploadLocked("The upload's lock was lost; resume from HEAD's offset.")
            self._renewed = time.monotonic()

    def finish(self, *, whole_body: bool, after_response: submission.AfterResponse | None) -> PatchResult:
        """Keep the bytes that arrived and record the new offset; the last byte makes the job.

        ``whole_body`` is False when the client went away mid-body: what arrived is kept (tus: resume from
        HEAD's offset), unless the PATCH carried Upload-Checksum, which cannot be checked on part of a body.
        ChecksumMismatch (460) when the body is not what Upload-Checksum says; nothing is kept then.
        """
        if self._check is not None and self.checksum is not None:
            if not whole_body:
                self.abandon()
                return PatchResult(upload=self._info(self.start, UploadState.RECEIVING))
            if not hmac.compare_digest(self._check.digest(), self.checksum[1]):
                self.abandon()
                raise ChecksumMismatch(algorithm=self.checksum[0], offset=self.start)
        new_offset = self.start + self.received
        final = self.length is not None and new_offset == self.length
        try:
            progress = self.writer.keep(new_offset=new_offset, final=final)
            digest = self._digest() if final else None
        except BaseException:
            self.abandon()
            raise
        self._done = True
        self.writer.close()
        with self.sessions() as session:
            saved = repo.save_progress(
                session,
                self.upload_id,
                self.token,
                from_offset=self.start,
                to_offset=new_offset,
                parts=progress.parts,
                pending_key=progress.pending_key,
                pending_bytes=progress.pending_bytes,
                completed=final,
                sha256=digest,
                head=bytes(self._head) if self._head is not None else None,
            )
        if not saved:
            raise UploadLocked("The upload's lock was lost; resume from HEAD's offset.")
        if self.old_pending and self.old_pending != progress.pending_key:
            self.uploads.forget(self.old_pending)
        _remember_hash(self.upload_id, new_offset, None if final else self._sha256)
        info = self._info(new_offset, UploadState.COMPLETED if final else UploadState.RECEIVING)
        if not final or not self.meta.get("submit", True):
            return PatchResult(upload=info)
        try:
            job, replayed = make_job(
                self.sessions,
                self.store,
                self.settings,
                principal=self.principal,
                actor=self.actor,
                upload_id=self.upload_id,
                job_id=self.job_id,
                head=bytes(self._head) if self._head is not None else None,
                size=new_offset,
                digest=digest or "",
                meta=self.meta,
                options=JobOptions.model_validate(self.meta["options"]),
                sealed_password=self.meta.get("password_sealed"),
                after_response=after_response,
                callback_url=self.meta.get("callback_url"),
            )
        except PagemillError as error:
            # The upload stays completed: POST /api/v1/documents with its id can make the job later.
            return PatchResult(upload=info, job_error=error)
        return PatchResult(upload=info, job=job, replayed=replayed)

    def abandon(self) -> None:
        """Discard this PATCH's bytes and give the lock back (the offset is unchanged)."""
        if self._done:
            return
        self._done = True
        try:
            self.writer.discard()
        finally:
            self.writer.close()
            with self.sessions() as session:
                repo.release_lock(session, self.upload_id, self.token)

    def _digest(self) -> str:
        if self._sha256 is not None:
            return str(self._sha256.hexdigest())
        # Bytes of this upload went through another replica: hash the stored original once, streaming.
        digest = hashlib.sha256()
        for chunk in self.store.iter_chunks(jobs_service.source_key(self.job_id)):
            digest.update(chunk)
        return digest.hexdigest()

    def _info(self, offset: int, state: str) -> UploadInfo:
        return UploadInfo(
            id=self.upload_id,
            offset=offset,
            length=self.length,
            expires_at=self.expires_at,
            state=state,
            job_id=self.job_id,
        )


def begin_patch(
    sessions: SessionScope,
    store: BlobStore,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    upload_id: str,
    offset: int,
    length: int | None,
    checksum: tuple[str, bytes] | None,
    expected: int | None = None,
) -> Patch:
    """Lock the caller's upload for a PATCH at ``offset`` (with ``length``: a deferred Upload-Length) that
    declares ``expected`` body bytes (Content-Length; lets the S3 backend stream it as one part).

    UploadOffsetMismatch (409) at another offset than stored, UploadLocked (423) while another PATCH
    writes it, NotFound/UploadExpired (404/410), FileTooLarge (413) for a deferred length over the cap.
    """
    now = utcnow()
    token = uuid.uuid4().hex
    cap = upload_cap(settings, principal)
    with sessions() as session:
        upload = owned(session, principal, upload_id, now=now)
        if upload.upload_offset != offset:
            raise UploadOffsetMismatch(offset=upload.upload_offset, sent=offset)
        if upload.state != UploadState.RECEIVING:
            raise UploadOffsetMismatch("The upload is complete: it takes no more bytes.", offset=offset)
        if length is not None and upload.length is not None and length != upload.length:
            raise MalformedRequest("Upload-Length cannot change once set.", length=upload.length)
        if length is not None and (length > cap or length < offset):
            if length > cap:
                raise FileTooLarge(max_bytes=cap, length=length)
            raise MalformedRequest("Upload-Length is below the bytes already received.", offset=offset)
        if not repo.take_lock(
            session, upload.id, token, now, now + timedelta(seconds=settings.uploads.lock_lease_s)
        ):
            raise UploadLocked(retry_after_s=1)
        if length is not None and upload.length is None:
            repo.set_length(session, upload.id, token, length)
        session.flush()
        session.refresh(upload)
        snapshot = StoredUpload(
            id=upload.id,
            job_id=upload.job_id,
            offset=upload.upload_offset,
            multipart_id=upload.multipart_id,
            parts=list(upload.parts),
            pending_key=upload.pending_key,
            pending_bytes=upload.pending_bytes,
            checksum=upload.meta.get("part_checksum"),
        )
        snapshot_length = upload.length
        session.expunge(upload)
    uploads = make_upload_store(store, settings)
    try:
        writer = uploads.writer(snapshot, expected, length if length is not None else snapshot_length)
    except BaseException:
        with sessions() as session:
            repo.release_lock(session, upload.id, token)
        raise
    return Patch(
        sessions,
        store,
        settings,
        principal=principal,
        actor=actor,
        upload=upload,
        token=token,
        writer=writer,
        uploads=uploads,
        checksum=checksum,
    )
