"""The worker side of a page task: claim the next pages on a queue (fairly), read them, save them fenced.

Every step is idempotent and re-entrant: a task's message names a queue only, pages are claimed in the
database with an attempt counted before work starts (so a worker killed mid-page is remembered), writes are
fenced on the claim, and a page that keeps killing its worker is failed after ``worker.max_attempts``.

Each claim reads under the time limits of its kind (pagemill.jobs.page_limits, pagemill.deadlines): a page
over them is retried while it has attempts, then fails PROCESSING_TIMEOUT. A page that fails for good is
recorded as a dead letter in the transaction that saves it (pagemill.dead_letters).
"""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pagemill import deadlines, queue
from pagemill.db import session_scope
from pagemill.dead_letters import service as dead_letters
from pagemill.deadlines import HardTimeLimitExceeded
from pagemill.documents.audio.source import stored_audio_source
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.source import DocumentSource, open_source
from pagemill.engines.base import PageResult
from pagemill.errors import PagemillError, ProcessingError, ProcessingTimeout, TransientError, WorkerCrashed
from pagemill.events import service as events
from pagemill.events.service import FinishedPage
from pagemill.jobs import claim_repository as claims_repo
from pagemill.jobs import claims, page_limits, reading
from pagemill.jobs import repository as repo
from pagemill.jobs.claim_repository import ClaimedPages
from pagemill.jobs.local_files import local_copy
from pagemill.jobs.options import JobOptions
from pagemill.jobs.processing import finalize_job, ocr_route
from pagemill.jobs.results import public_lines
from pagemill.logging import bound as bound_log_context
from pagemill.metrics import PAGES
from pagemill.models import Job, JobState, PageState
from pagemill.models.base import utcnow
from pagemill.secret_box import open_secret
from pagemill.settings import Settings, get_settings
from pagemill.storage import get_blob_store

log = logging.getLogger(__name__)

_FLUSH_EVERY_PAGES = 64  # half a default claim of text-layer pages (worker.pages_per_task, 128)
_FLUSH_EVERY_S = 0.5
_DEFER_BASE_S = 2.0
_DEFER_MAX_S = 120.0

Outcome = tuple[int, PageResult | None, PagemillError | None]


class PagesDeferred(Exception):
    """The claimed pages' engines were all unavailable: the pages wait (``not_before``) and the task should
    come back after ``delay_s`` to read them (or other work). Internal to the worker: never a client's
    error, so outside the error tree (whose codes are unique and public)."""

    def __init__(self, delay_s: float, cause: PagemillError) -> None:
        super().__init__(cause.message)
        self.delay_s = delay_s
        self.cause = cause

    def __reduce__(self) -> tuple[type[PagesDeferred], tuple[float, PagemillError]]:
        # A prefork pool process sends the task's exception (inside Celery's Retry) to its parent pickled.
        return (type(self), (self.delay_s, self.cause))


def read_next(queue_name: str) -> bool:
    """Claim the next pages waiting on ``queue_name`` and read them; after text-layer pages, claim and read
    more for up to ``worker.claim_more_for_s`` (each claim still chosen fairly): a chunk of text-layer
    pages takes well under a second, and going back to the broker between chunks would cost more than
    reading them. False when nothing was waiting.

    PagesDeferred when their engines were unavailable (the caller retries after its ``delay_s``).
    """
    settings = get_settings()
    deadline = time.monotonic() + settings.worker.claim_more_for_s
    read_any = False
    while True:
        claim = claims.claim_next(queue_name, settings)
        if claim is None:
            return read_any
        read_any = True
        with bound_log_context(job_id=claim.job_id):
            with claims.holding(claim, settings) as hold:
                hold.settled = read_claim(claim, settings)
            finalize_job(claim.job_id)
        # An OCR page takes seconds: a broker round trip is nothing beside it, and going back lets an
        # ingest task (a new job's first step) in instead of making it wait behind this loop.
        if claim.ocr or time.monotonic() >= deadline:
            return True


def read_claim(claim: ClaimedPages, settings: Settings) -> bool:
    """Read a claim's pages, unless its job ended or was cancelled meanwhile. True when every page of the
    claim was saved or handed on (none is left to give back)."""
    with session_scope() as session:
        job = repo.get_job(session, claim.job_id)
        if job is None or JobState(job.state).is_final:
            return False
        if job.cancel_requested:
            repo.skip_pending_pages(session, claim.job_id)
            return False
    with bound_log_context(tenant=job.tenant_id):
        return _read_pages(job, claim, settings)


def _read_pages(job: Job, claim: ClaimedPages, settings: Settings) -> bool:
    options = JobOptions.model_validate(job.options)
    max_attempts = settings.worker.max_attempts
    fence = claim.claim_id
    poisoned = [index for index, attempts in claim.pages if attempts >= max_attempts]
    if poisoned:
        _save(job.id, fence, [(index, None, WorkerCrashed(attempts=max_attempts)) for index in poisoned])
    indices = [index for index, attempts in claim.pages if attempts < max_attempts]
    if not indices:
        return True
    ocr = claim.ocr
    tries = {index: attempts + 1 for index, attempts in claim.pages}  # this claim's attempt is counted
    needs_ocr: list[int] = []
    batch: list[Outcome] = []
    last_flush = time.monotonic()
    # OCR pages are claimed one at a time (the claim looked at the cancel flag); text-layer pages take a
    # millisecond or two, so a chunk looks for a cancel at each flush (every 64 pages or half a second).
    assert job.kind is not None  # a job has pages only once its document is known (fetched, for a URL)
    document_kind = DocumentKind(job.kind)
    chain = reading.engine_chain(options, settings, document_kind)
    kind = page_limits.work_kind(document_kind, ocr)
    limit = page_limits.limit_of(kind, settings)
    with (
        _open_pages(job, document_kind, options, settings) as source,
        deadlines.limited(kind, limit.soft_s, limit.hard_s) as deadline,
    ):
        for position, index in enumerate(indices):
            if position and not ocr and deadline.spent():
                # The chunk is out of time (not one page: each was quick enough): keep what is read and
                # give the rest back unread, for the next task.
                page_limits.chunk_stopped(deadline, job.id, len(indices) - position)
                _stop_early(job, claim, batch, needs_ocr, indices[position:], options, settings)
                return False
            started = time.perf_counter()
            try:
                with deadline.alarm():
                    if ocr:
                        result = reading.ocr_page(
                            source, index, chain, settings, claim.chain_start, options=options
                        )
                    else:
                        text = reading.text_pass(source, index, options, settings)
                        if text is None:
                            needs_ocr.append(index)
                            continue
                        result = text
                result.timings_ms["total"] = (time.perf_counter() - started) * 1000
                batch.append((index, result, None))
            except TransientError as exc:
                # Not the page's fault: what was read so far is kept, the rest waits for the engines.
                _save(job.id, fence, batch)
                _defer(job.id, claim, [*indices[position:], *needs_ocr], exc, settings)
                raise AssertionError("unreachable: _defer raises") from exc
            except (HardTimeLimitExceeded, SoftTimeLimitExceeded, ProcessingTimeout) as exc:
                # Over the page's (or the chunk's) time, or Celery's task limit (a backstop above both):
                # retried while it has attempts, failed on its last; the pages not reached go back.
                failed = page_limits.page_timed_out(deadline, job.id, index, tries[index], settings, exc)
                if failed is not None:
                    batch.append((index, None, failed))
                _stop_early(job, claim, batch, needs_ocr, indices[position + 1 :], options, settings)
                if isinstance(exc, SoftTimeLimitExceeded):
                    raise
                return False
            except PagemillError as exc:
                batch.append((index, None, exc))
            except Exception as exc:  # a bug or a parser failure on this page must not sink the whole job
                log.exception("page %s of job %s failed", index + 1, job.id)
                error = ProcessingError("This page could not be read.", page=index + 1)
                error.__cause__ = exc  # its traceback: the dead letter's fingerprint
                batch.append((index, None, error))
            if ocr or len(batch) >= _FLUSH_EVERY_PAGES or time.monotonic() - last_flush > _FLUSH_EVERY_S:
                _save(job.id, fence, batch)
                batch, last_flush = [], time.monotonic()
                if claims.HEARTBEAT.lost(fence):
                    log.warning("claim %s on job %s lapsed; leaving its pages to others", fence, job.id)
                    return False
                if not ocr and _cancelled(job.id):
                    return False
    _save(job.id, fence, batch)
    if needs_ocr:
        _hand_to_ocr(job, claim, needs_ocr, options, settings)
    return True


def _stop_early(
    job: Job,
    claim: ClaimedPages,
    batch: list[Outcome],
    needs_ocr: list[int],
    unread: list[int],
    options: JobOptions,
    settings: Settings,
) -> None:
    """End a claim before its last page: save what was read, hand pages found to need OCR on, and take back
    the attempt of the pages not reached (the claim gives them back, with a page task each)."""
    _save(job.id, claim.claim_id, batch)
    if unread:
        with session_scope() as session:
            repo.uncount_attempt(session, job.id, unread)
    if needs_ocr:
        _hand_to_ocr(job, claim, needs_ocr, options, settings)


def _hand_to_ocr(
    job: Job, claim: ClaimedPages, indices: list[int], options: JobOptions, settings: Settings
) -> None:
    """Send pages without a usable text layer to the pool of the job's OCR engine, one task per page."""
    target, chain_start = ocr_route(options, settings, DocumentKind(job.kind) if job.kind else None)
    with session_scope() as session:
        handed = claims_repo.hand_to_ocr(session, claim.claim_id, indices, target, chain_start)
        queue.enqueue_page_tasks(session, target, handed, priority=job.priority)
        repo.refresh_progress(session, job.id)
        events.job_progress(session, job.id, settings=settings)


def _defer(
    job_id: str, claim: ClaimedPages, indices: list[int], error: TransientError, settings: Settings
) -> None:
    """Give pages back to wait for their engines, with backoff; fail those that waited too often."""
    with session_scope() as session:
        previous = max((d for _, d in claims_repo.deferrals(session, job_id, indices)), default=0)
        delay = min(_DEFER_MAX_S, _DEFER_BASE_S * 2**previous) * random.uniform(0.5, 1.0)
        deferred = claims_repo.defer_pages(
            session, claim.claim_id, indices, utcnow() + timedelta(seconds=delay)
        )
    spent = [index for index, deferrals in deferred if deferrals > settings.worker.max_deferrals]
    if spent:
        log.warning("job %s: %d page(s) failed after waiting for their engines", job_id, len(spent))
        _save(job_id, None, [(index, None, error) for index in spent])
        finalize_job(job_id)
    raise PagesDeferred(delay, error)


def _cancelled(job_id: str) -> bool:
    with session_scope() as session:
        if not repo.cancel_requested(session, job_id):
            return False
        repo.skip_pending_pages(session, job_id)
        return True


def _save(job_id: str, fence: str | None, batch: list[Outcome]) -> None:
    """Write a batch of page outcomes in one transaction (two statements, fenced on the claim ``fence``),
    then add them to the job's counters."""
    if not batch:
        return
    done: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for index, result, error in batch:
        if result is not None:
            done.append(
                {
                    "index": index,
                    "engine": result.engine,
                    "model": result.model,
                    "rotation": result.rotation,
                    "text": result.text,
                    "markdown": result.markdown,
                    "data": _page_data(result),
                    "lines_json": public_lines(result.lines),
                    "duration_ms": result.timings_ms.get("total"),
                }
            )
        elif error is not None:
            failed.append({"index": index, "error_code": error.code, "error_message": error.message})
    finished = [FinishedPage(row["index"], PageState.DONE, engine=row["engine"]) for row in done] + [
        FinishedPage(row["index"], PageState.FAILED, error_code=row["error_code"]) for row in failed
    ]
    errors = [(index, error) for index, result, error in batch if result is None and error is not None]
    now = utcnow()
    with session_scope() as session:
        moved_done = repo.finish_pages(session, job_id, PageState.DONE, done, claim_id=fence, now=now)
        moved_failed = repo.finish_pages(session, job_id, PageState.FAILED, failed, claim_id=fence, now=now)
        counts = repo.add_progress(session, job_id, done=moved_done, failed=moved_failed)
        events.pages_completed(session, job_id, finished, finished_at=now)
        events.job_progress(session, job_id, counts=counts)
        # In the failure's transaction: a page failed for good has its dead letter, or neither is stored.
        dead_letters.record_page_failures(session, job_id, errors, finished_at=now)
    for row in done:
        PAGES.labels(engine=row["engine"], outcome="done").inc()
    for row in failed:
        PAGES.labels(engine="-", outcome=row["error_code"]).inc()


def _page_data(result: PageResult) -> dict[str, Any]:
    """What a page stores in its ``data`` column: how it was read, and its structure (an office page's
    blocks, a piece's segments) when it has one."""
    data: dict[str, Any] = {"settings": result.settings, "timings_ms": result.timings_ms}
    if result.blocks is not None:
        data["blocks"] = result.blocks
    if result.segments is not None:
        data["segments"] = result.segments
    return data


def _open_pages(job: Job, kind: DocumentKind, options: JobOptions, settings: Settings) -> DocumentSource:
    """The job's pages: a recording's stored pieces, or the document itself (a local copy of the original)."""
    store = get_blob_store()
    if kind.is_audio:
        return stored_audio_source(job.id, kind, store)
    return open_source(
        local_copy(store, job.source_key),
        kind,
        password=open_secret(job.document_password_sealed, settings),
        limits=settings.limits,
        office=options.read_options(),
    )
