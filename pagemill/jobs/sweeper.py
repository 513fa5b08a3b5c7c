"""The sweeper: no job stays active without bound. Run by every worker every ``worker.sweep_interval_s``.

Each sweep, first: page claims that were not renewed in time (their worker was killed, or hangs) are
released and one page task is sent per page, so a killed worker's pages are read again within
``worker.claim_ttl_s + worker.sweep_interval_s`` on every broker (see pagemill.jobs.claims).

Then, for active (queued or running) jobs:

* cancelled, and no progress for ``worker.cancel_grace_s``: nothing is stopping it (its messages are lost,
  or its pages wait for a pool that is not there), so it is ended ``cancelled`` here: pages not yet read
  are skipped and the partial result is written;
* submitted more than ``worker.job_deadline_s`` ago: ended ``failed`` (PROCESSING_TIMEOUT);
* no progress for ``worker.lease_s`` (a lost message, a dead worker): re-enqueued, at most
  ``worker.max_requeues`` times in a row without a page finishing or being taken by a worker in between;
  the next time it is ended ``failed`` (JOB_STALLED) instead of being re-enqueued forever.

Then events (pagemill.events.relay.sweep): a relay pass over events not handed to their sinks yet, and a
message for each webhook delivery that is due with none coming (a retry after a long wait, a lost message,
a worker killed mid-attempt).

Last, retention (pagemill.retention.service): originals and results past their tier's retention are deleted,
and jobs whose results went end ``expired``; events older than ``events.retention_s`` are deleted, in
bounded batches.
Expired and deleted tus uploads are removed, their S3 multipart uploads aborted (pagemill.uploads.sweeper).

Pages still pending when a job is given up fail with the job's code. Every claim is a conditional update,
so several sweepers never act on the same job twice, and every end is fenced on the job being active, so a
worker finishing at the same moment wins or loses cleanly (its page writes are fenced on pending pages).
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

from pagemill import queue
from pagemill.db import session_scope
from pagemill.dead_letters import service as dead_letters
from pagemill.errors import JobStalled, ProcessingError, ProcessingTimeout
from pagemill.events import relay
from pagemill.events import service as events
from pagemill.jobs import claim_repository as claims_repo
from pagemill.jobs import claims
from pagemill.jobs import repository as repo
from pagemill.jobs import sweep_repository as sweep_repo
from pagemill.jobs.processing import finalize_job
from pagemill.models import JobState
from pagemill.models.base import utcnow
from pagemill.retention.service import sweep_events, sweep_expired
from pagemill.settings import Settings, get_settings

log = logging.getLogger(__name__)


def sweep_stalled_jobs(settings: Settings | None = None) -> list[str]:
    """One sweep (see the module docstring); the ids of the jobs it re-enqueued."""
    settings = settings or get_settings()
    worker = settings.worker
    now = utcnow()
    release_lapsed_claims()
    resend_orphaned_pages(settings)
    with session_scope() as session:
        overdue = sweep_repo.claim_overdue_jobs(
            session,
            cancelled_before=now - timedelta(seconds=worker.cancel_grace_s),
            created_before=now - timedelta(seconds=worker.job_deadline_s),
        )
    for job_id, cancel_requested in overdue:
        if cancel_requested:
            end_cancelled(job_id)
        else:
            give_up(job_id, ProcessingTimeout(deadline_s=worker.job_deadline_s))

    requeued: list[str] = []
    stalled: list[sweep_repo.StalledJob] = []
    with session_scope() as session:
        for job in sweep_repo.claim_stalled_jobs(session, older_than=now - timedelta(seconds=worker.lease_s)):
            if job.requeues > worker.max_requeues:
                stalled.append(job)
                continue
            queue.enqueue_after_commit(session, queue.INGEST_JOB, [job.id], priority=job.priority)
            requeued.append(job.id)
    if requeued:
        log.warning("re-enqueued %d stalled job(s): %s", len(requeued), ", ".join(requeued))
    for job in stalled:
        give_up(job.id, JobStalled(requeues=job.requeues - 1, lease_s=worker.lease_s))
    # Events and webhooks before storage: a relay pass and lost or long-delayed deliveries (never raises).
    relay.sweep(settings)
    sweep_events(settings)  # the database only: before storage too
    # Last: a failing blob store must not hold up the recovery of stalled jobs above.
    sweep_expired(settings)
    sweep_uploads_safely(settings)
    return requeued


def sweep_uploads_safely(settings: Settings) -> None:
    """Remove expired and deleted tus uploads (pagemill.uploads.sweeper); a storage or database failure
    is logged and retried at the next sweep, never raised into the job sweep."""
    from pagemill.storage import get_blob_store
    from pagemill.uploads.sweeper import sweep_uploads

    try:
        sweep_uploads(settings, get_blob_store())
    except Exception:
        log.warning("upload sweep failed; retried at the next sweep", exc_info=True)


def release_lapsed_claims() -> int:
    """Offer again the pages of claims whose holder died on this host (seen at once: its pid is gone) and
    of claims that lapsed (a holder elsewhere stopped renewing), one page task each; how many pages."""
    with session_scope() as session:
        released = []
        for holder in claims_repo.claim_holders(session, f"{socket.gethostname()}:"):
            if not claims.holder_alive(holder):
                released += claims_repo.release_claims_of(session, holder)
        released += claims_repo.release_lapsed_claims(session, utcnow())
        for _job_id, queue_name, priority in released:
            queue.enqueue_page_tasks(session, queue_name, 1, priority=priority)
    if released:
        jobs = sorted({job_id for job_id, _, _ in released})
        log.warning("released %d page(s) of dead or lapsed claims (jobs %s)", len(released), ", ".join(jobs))
    return len(released)


_MAX_RESENT = 1000
# A queued job's ingest message is taken within seconds by any worker on `ingest`; one that waited this
# long while the queue holds no message was lost.
_QUEUED_LOST_AFTER_S = 60


def resend_orphaned_pages(settings: Settings) -> int:
    """Send page tasks for pages that wait on a queue the broker holds no message for (the broker lost
    them: a Redis restarted empty, a publish that failed after commit), and ingest tasks for jobs queued
    over a minute while ``ingest`` holds no message; how many tasks.

    Every claimable unit of work normally has a message waiting; an empty queue beside claimable pages
    means messages were lost. Extra messages are harmless (a task that finds nothing to claim returns).
    """
    sent = 0
    now = utcnow()
    with session_scope() as session:
        queued = sweep_repo.queued_jobs(session, created_before=now - timedelta(seconds=_QUEUED_LOST_AFTER_S))
    if queued and queue.waiting_messages(queue.INGEST_QUEUE) == 0:
        with session_scope() as session:
            for job_id, priority in queued:
                queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id], priority=priority)
        sent += len(queued)
        log.warning("queue ingest held no message for %d queued job(s): sent them again", len(queued))
    for queue_name in (queue.CPU_QUEUE, queue.GPU_QUEUE):
        with session_scope() as session:
            work = claims_repo.claimable_work(session, queue_name, now)
        if not work or queue.waiting_messages(queue_name) != 0:
            continue
        with session_scope() as session:
            for _job_id, priority, ocr, pages in work:
                tasks = min(claims.tasks_for(pages, ocr, settings), _MAX_RESENT - sent)
                queue.enqueue_page_tasks(session, queue_name, tasks, priority=priority)
                sent += tasks
        log.info("queue %s held no message for %d waiting job(s): sent page tasks", queue_name, len(work))
    return sent


def give_up(job_id: str, error: ProcessingError) -> bool:
    """End an active job ``failed`` with ``error``, its pending pages failed with the same code (pages
    already read are kept), recorded as a dead letter (with those pages); False if it was final already."""
    with session_scope() as session:
        facts = dead_letters.job_facts(session, job_id)  # before the end wipes the job's sealed password
        if facts is None or not repo.finish_job(session, job_id, JobState.FAILED, error=error.to_dict()):
            return False
        pending = repo.pending_pages(session, job_id)
        pages = repo.fail_pending_pages(session, job_id, error.code, error.message)
        repo.refresh_progress(session, job_id)
        events.job_ended(session, job_id, JobState.FAILED)
        dead_letters.record_job_failure(
            session,
            facts,
            error,
            task=dead_letters.TaskRef(queue.SWEEP_STALLED),
            attempts=max((attempts for _, attempts in pending), default=facts.attempts),
            pages=[index for index, _ in pending],
        )
    log.error("job %s given up: %s (%d pending page(s) failed)", job_id, error.code, pages)
    return True


def end_cancelled(job_id: str) -> None:
    """End a cancelled job that no worker is stopping: skip its unread pages and finalise it (partial
    result written); a job not opened yet ends without pages."""
    with session_scope() as session:
        job = repo.get_job(session, job_id)
        if job is None or JobState(job.state).is_final:
            return
        skipped = repo.skip_pending_pages(session, job_id)
        if job.pages_total is None and repo.finish_job(session, job_id, JobState.CANCELLED):
            events.job_ended(session, job_id, JobState.CANCELLED)
    log.warning("cancelled job %s ended by the sweeper (%d unread page(s) skipped)", job_id, skipped)
    finalize_job(job_id)
