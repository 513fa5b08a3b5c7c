"""Expired and deleted uploads are removed: their bytes deleted, their S3 multipart uploads aborted.

Called from the job sweeper (pagemill.jobs.sweeper) on every worker, every ``worker.sweep_interval_s``.
Each upload is claimed by a fenced update (state -> deleted) before its storage is touched, so several
sweepers never remove one twice; a removal that fails (storage down) leaves the row ``deleted`` and the
next sweep tries again. An expired upload that became a job keeps its bytes (the job's original): only its
row goes. Every ten minutes, S3 multipart uploads that no upload row refers to (a replica that died between
opening one and recording its upload) are aborted once older than any upload can live and seen so twice.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from pagemill.db import session_scope
from pagemill.models import UploadState
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.uploads import repository as repo
from pagemill.uploads.service import remove_storage
from pagemill.uploads.storage import UploadStore, make_upload_store

log = logging.getLogger(__name__)

_BATCH = 100
# Listing a bucket's open multipart uploads is not free: once every 10 minutes per process is plenty for
# what only a crash leaves behind.
ORPHAN_SWEEP_EVERY_S = 600
ORPHAN_GRACE_S = 3600
_orphans_swept = [0.0]
_orphan_candidates: set[str] = set()


def sweep_uploads(settings: Settings, store: BlobStore) -> int:
    """One sweep of expired and deleted uploads; how many were removed (or forgotten)."""
    uploads = make_upload_store(store, settings)
    now = utcnow()
    with session_scope() as session:
        due = [
            (upload.id, upload.state, upload.job_id, upload.multipart_id)
            for upload in repo.uploads_to_sweep(session, now, _BATCH)
        ]
    removed = 0
    for upload_id, state, job_id, multipart_id in due:
        with session_scope() as session:
            if state == UploadState.SUBMITTED:
                # The bytes are the job's original now; the row only served replays of its upload id.
                repo.delete_upload(session, upload_id)
                removed += 1
                continue
            if state != UploadState.DELETED and not repo.claim_expired(session, upload_id, state):
                continue  # another sweeper has it, or a PATCH finished it meanwhile
        remove_storage(session_scope, uploads, upload_id, job_id, multipart_id)
        removed += 1
    if removed:
        log.info("removed %d expired or deleted upload(s)", removed)
    if time.monotonic() - _orphans_swept[0] > ORPHAN_SWEEP_EVERY_S:
        _orphans_swept[0] = time.monotonic()
        removed += abort_orphaned_multiparts(settings, uploads)
    return removed


def abort_orphaned_multiparts(settings: Settings, uploads: UploadStore) -> int:
    """Abort S3 multipart uploads that no upload refers to (an API replica that died between opening one
    and recording its upload) once they are older than any upload can live and were seen so by the
    previous call too; how many."""
    cutoff = utcnow() - timedelta(seconds=settings.uploads.expire_after_s + ORPHAN_GRACE_S)
    open_ones = uploads.open_multiparts(cutoff)
    with session_scope() as session:
        known = repo.known_multiparts(session, [multipart_id for _, multipart_id in open_ones])
    unknown = [(job_id, multipart_id) for job_id, multipart_id in open_ones if multipart_id not in known]
    # Seen unknown twice, a sweep apart: one that is only being opened (its row not yet written), or a
    # multipart POST still streaming, is never taken for an orphan, whatever dates the server reports.
    orphans = [item for item in unknown if item[1] in _orphan_candidates]
    _orphan_candidates.clear()
    _orphan_candidates.update(multipart_id for _, multipart_id in unknown)
    _orphan_candidates.difference_update(multipart_id for _, multipart_id in orphans)
    for job_id, multipart_id in orphans:
        uploads.abort_multipart(job_id, multipart_id)
    if orphans:
        log.warning("aborted %d orphaned S3 multipart upload(s)", len(orphans))
    return len(orphans)
