"""Retention and purges: the sweeper's expiry step, and the tenant's right to erasure.

Per tier (``tiers.<name>.originals_retention_s`` and ``results_retention_s``, counted from when a job
ended): once the originals' period has passed the original is deleted and the results stay; once the
results' period has passed every blob of the job and its page text are deleted and the job ends
``expired``, its result endpoints answering 410 RESULT_EXPIRED. A purge does the latter at once.

Blobs are deleted before the database records it: a failure in between leaves a job whose deletion the next
sweep repeats, never a blob nothing points to any more.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from pagemill.db import session_scope
from pagemill.documents.audio.source import pieces_prefix
from pagemill.errors import Conflict
from pagemill.events import repository as events_repo
from pagemill.events import service as events
from pagemill.jobs import service as jobs
from pagemill.models import Job, JobState
from pagemill.models.base import utcnow
from pagemill.retention import repository as repo
from pagemill.settings import TIER_NAMES, Settings
from pagemill.storage import BlobStore, get_blob_store
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor

log = logging.getLogger(__name__)

_BATCH = 200
# Events are deleted this many per transaction, at most this many transactions per sweep: short locks, and a
# backlog (a first sweep after a long time) is worked off over a few sweeps.
_EVENT_BATCH = 1000
_EVENT_BATCHES_PER_SWEEP = 10


def job_prefix(job_id: str) -> str:
    """Where every blob of a job lives (original and results)."""
    return f"jobs/{job_id}/"


def sweep_expired(settings: Settings, store: BlobStore | None = None) -> tuple[int, int]:
    """One retention step of the sweeper: delete originals and results past their tier's retention;
    (originals deleted, jobs expired). At most a few hundred of each per sweep, oldest first."""
    store = store or get_blob_store()
    now = utcnow()
    originals = expired = 0
    for tier_name in TIER_NAMES:
        tier = settings.tiers.get(tier_name)
        if tier.results_retention_s is not None:
            with session_scope() as session:
                due = repo.results_past(
                    session, tier_name, now - timedelta(seconds=tier.results_retention_s), _BATCH
                )
            for job_id in due:
                store.delete_prefix(job_prefix(job_id))
            if due:
                with session_scope() as session:
                    for job_id in repo.expire_jobs(session, due, now, purged=False):
                        events.job_ended(session, job_id, JobState.EXPIRED, settings=settings)
                        expired += 1
        if tier.originals_retention_s is not None:
            with session_scope() as session:
                sources = repo.originals_past(
                    session, tier_name, now - timedelta(seconds=tier.originals_retention_s), _BATCH
                )
            for job_id, key in sources:
                store.delete_prefix(key)
                # A recording's pieces are its original cut up: they go with it.
                store.delete_prefix(pieces_prefix(job_id))
            if sources:
                with session_scope() as session:
                    repo.mark_sources_deleted(session, [job_id for job_id, _ in sources], now)
                originals += len(sources)
    if originals or expired:
        log.info("retention: %d original(s) deleted, %d job(s) expired", originals, expired)
    return originals, expired


def sweep_events(settings: Settings) -> int:
    """The sweeper's event step: delete events handed to their sinks more than ``events.retention_s`` ago
    (most when they were written), and with them their webhook deliveries; events not yet handed on are
    kept. How many were deleted."""
    cutoff = utcnow() - timedelta(seconds=settings.events.retention_s)
    deleted = 0
    for _ in range(_EVENT_BATCHES_PER_SWEEP):
        with session_scope() as session:
            count = events_repo.delete_events_before(session, cutoff, limit=_EVENT_BATCH)
        deleted += count
        if count < _EVENT_BATCH:
            break
    if deleted:
        log.info("retention: %d event(s) deleted", deleted)
    return deleted


def purge_job(session: Session, store: BlobStore, tenant_id: str, job_id: str, *, actor: Actor) -> Job:
    """Delete a finished job's blobs and page text now (right to erasure), audited; the job stays, expired
    and marked purged, so that its id still answers (410 for its results). Conflict while it is active:
    cancel it first."""
    job = jobs.get_job(session, tenant_id, job_id)
    if not JobState(job.state).is_final:
        raise Conflict(
            "The job is still active; cancel it (DELETE without purge) and purge it once it has ended.",
            state=job.state,
        )
    store.delete_prefix(job_prefix(job.id))
    was_expired = job.state == JobState.EXPIRED
    repo.expire_jobs(session, [job.id], utcnow(), purged=True)
    if not was_expired:
        events.job_ended(session, job.id, JobState.EXPIRED)
    audit.record(session, actor, audit.JOB_PURGED, target=job.id, tenant_id=tenant_id)
    session.flush()
    session.refresh(job)
    return job
