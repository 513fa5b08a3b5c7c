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
from collections.abc import Sequence
from datetime import datetime, timedelta

from pagemill.db import SessionScope, session_scope
from pagemill.documents.audio.source import pieces_prefix
from pagemill.errors import Conflict, DependencyUnavailable, NotFound
from pagemill.events import repository as events_repo
from pagemill.events import service as events
from pagemill.jobs import service as jobs
from pagemill.jobs.options import OutputFormat
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
            ready = _retire(store, due, now)
            for job_id in ready:
                store.delete_prefix(job_prefix(job_id))
            if ready:
                with session_scope() as session:
                    for job_id in repo.expire_jobs(session, ready, now, purged=False):
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


def _retire(store: BlobStore, job_ids: Sequence[str], now: datetime) -> list[str]:
    """Before jobs' blobs are deleted: mark them retiring (no cached job adopts them any more), then hand
    each one's page rows and results over to the cached jobs still reading them; the ids whose blobs may be
    deleted now (the others wait for a later sweep)."""
    with session_scope() as session:
        retiring = repo.retire_jobs(session, job_ids, now, purged=False)
    return [job_id for job_id in retiring if _hand_over(store, job_id)]


def _hand_over(store: BlobStore, owner_id: str) -> bool:
    """Copy ``owner_id``'s results to the oldest cached job still reading them and give it the owner's page
    rows and other readers; whether the owner's blobs may be deleted now. False while its only readers are
    being deleted themselves (they go first), or when the heir began to meanwhile."""
    with session_scope() as session:
        readers = repo.result_readers(session, owner_id)
    if readers.heir is None:
        return not readers.waiting
    copies = [
        (jobs.result_key(owner_id, fmt), jobs.result_key(readers.heir, fmt))
        for fmt in map(OutputFormat, readers.formats)
    ]
    for source, target in copies:
        try:
            store.copy(source, target)
        except NotFound:
            log.warning("retention: %s has no %s to hand over", owner_id, source)
    with session_scope() as session:
        handed = repo.hand_over(session, owner_id, readers.heir)
    if not handed:
        # The heir is going too: its copies must not outlive it.
        for _, target in copies:
            store.delete_prefix(target)
    return handed


def purge_job(sessions: SessionScope, store: BlobStore, tenant_id: str, job_id: str, *, actor: Actor) -> Job:
    """Delete a finished job's blobs and page text now (right to erasure), audited; the job stays, expired
    and marked purged, so that its id still answers (410 for its results). Conflict while it is active:
    cancel it first. Cached jobs reading its results get copies first (:func:`_retire`); while one of them
    is being deleted itself, 503 + Retry-After."""
    now = utcnow()
    with sessions() as session:
        job = jobs.get_job(session, tenant_id, job_id)
        if not JobState(job.state).is_final:
            raise Conflict(
                "The job is still active; cancel it (DELETE without purge) and purge it once it has ended.",
                state=job.state,
            )
        repo.retire_jobs(session, [job.id], now, purged=True)
        # The stored id: the path may spell the UUID otherwise (upper case, no hyphens).
        job_id = job.id
    if not _hand_over(store, job_id):
        raise DependencyUnavailable(
            "A cached copy of this job is being deleted; retry after Retry-After seconds.", retry_after_s=5
        )
    store.delete_prefix(job_prefix(job_id))
    with sessions() as session:
        job = jobs.get_job(session, tenant_id, job_id)
        was_expired = job.state == JobState.EXPIRED
        repo.expire_jobs(session, [job.id], now, purged=True)
        if not was_expired:
            events.job_ended(session, job.id, JobState.EXPIRED)
        audit.record(session, actor, audit.JOB_PURGED, target=job.id, tenant_id=tenant_id)
        session.flush()
        session.refresh(job)
    return job
