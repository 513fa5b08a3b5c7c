"""The worker side of a job: open and plan it, read its pages, assemble its result.

Every step is idempotent and re-entrant: messages carry ids only, page writes are fenced on the page still
being pending, attempts are counted in the database before work starts (so a worker killed mid-page is
remembered), and a page that keeps killing its worker is failed after ``worker.max_attempts``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pagemill import queue
from pagemill.db import session_scope
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.probe import probe_document
from pagemill.documents.source import open_source
from pagemill.engines.base import PageResult
from pagemill.engines.registry import engine_pool
from pagemill.errors import (
    PagemillError,
    ProcessingError,
    ProcessingTimeout,
    TooManyPages,
    TransientError,
    WorkerCrashed,
)
from pagemill.jobs import reading
from pagemill.jobs import repository as repo
from pagemill.jobs.local_files import local_copy
from pagemill.jobs.options import JobOptions, OcrMode, select_pages
from pagemill.jobs.results import job_outcome, write_results
from pagemill.jobs.service import RESULT_MEDIA_TYPES, result_key
from pagemill.metrics import PAGES
from pagemill.models import Job, JobState, PageState
from pagemill.secret_box import open_secret
from pagemill.settings import Settings, get_settings
from pagemill.storage import get_blob_store

log = logging.getLogger(__name__)

_FLUSH_EVERY_PAGES = 32
_FLUSH_EVERY_S = 0.5


def fail_job(job_id: str, error: PagemillError) -> None:
    """End a job ``failed`` with a specific error (permanent errors only)."""
    with session_scope() as session:
        if repo.finish_job(session, job_id, JobState.FAILED, error=error.to_dict()):
            log.info("job %s failed: %s %s", job_id, error.code, error.message)


def ingest_job(job_id: str) -> None:
    """Open the document in a sandbox, check it, create its pages and enqueue their reading."""
    settings = get_settings()
    with session_scope() as session:
        attempt = repo.start_job(session, job_id)
        job = repo.get_job(session, job_id)
    if attempt is None or job is None:
        return  # final already (finished, cancelled before start) or gone
    if job.pages_total is None:
        # Only opening the document counts against the job's attempts: a re-planned job (after a lost
        # message) just re-sends its pending pages, whose own attempts are counted per page.
        if attempt > settings.worker.max_attempts:
            fail_job(job_id, WorkerCrashed(attempts=attempt - 1))
            return
        try:
            _plan(job, settings)
        except TransientError:
            raise
        except PagemillError as exc:
            fail_job(job_id, exc)
            return
    _enqueue_pending(job_id, settings)


def _plan(job: Job, settings: Settings) -> None:
    path = local_copy(get_blob_store(), job.source_key)
    password = open_secret(job.document_password_sealed, settings)
    try:
        # The document itself is held to the service-wide page cap (what opening it may cost)...
        info = probe_document(path, DocumentKind(job.kind), password=password, limits=settings.limits)
    except TooManyPages as exc:
        _record_page_count(job.id, exc.details.get("pages"))
        raise
    _record_page_count(job.id, info.page_count)  # known from here on, also if the job fails below
    options = JobOptions.model_validate(job.options)
    indices = select_pages(options.page_range, info.page_count)
    # ... and the tier's cap (fixed at submission) counts the pages the job will read: its page range.
    if job.max_pages is not None and len(indices) > job.max_pages:
        raise TooManyPages(
            f"The job selects {len(indices)} pages; its tier allows {job.max_pages} per document "
            "(choose fewer with page_range).",
            pages=len(indices),
            page_count=info.page_count,
            max_pages=job.max_pages,
        )
    with session_scope() as session:
        repo.set_planned(session, job.id, info.page_count, indices)


def _record_page_count(job_id: str, page_count: object) -> None:
    if isinstance(page_count, int):
        with session_scope() as session:
            repo.set_page_count(session, job_id, page_count)


def ocr_route(options: JobOptions, settings: Settings) -> tuple[str, int]:
    """Where this job's OCR pages go: the queue of the pool that runs the first healthy engine of the
    chain, and that engine's position in the chain."""
    chain = reading.engine_chain(options, settings)
    start = reading.routed_start(chain, settings)
    return engine_pool(chain[start]), start


def _enqueue_pending(job_id: str, settings: Settings) -> None:
    """Send tasks for every pending page: text-layer pages in chunks on the CPU queue, OCR pages one by one
    on the queue of the pool that runs the OCR engine."""
    with session_scope() as session:
        job = repo.get_job(session, job_id)
        if job is None:
            return
        pending = [index for index, _ in repo.pending_pages(session, job_id)]
        options = JobOptions.model_validate(job.options)
        text_first = job.kind == DocumentKind.PDF and options.ocr_mode != OcrMode.OCR
        size = settings.worker.pages_per_task if text_first else 1
        target, chain_start = (queue.CPU_QUEUE, 0) if text_first else ocr_route(options, settings)
        for first in range(0, len(pending), size):
            args = [job_id, pending[first : first + size], not text_first, chain_start]
            queue.enqueue_after_commit(session, queue.PROCESS_PAGES, args, target, priority=job.priority)
    if not pending:
        finalize_job(job_id)


def process_pages(job_id: str, indices: Sequence[int], ocr: bool, chain_start: int = 0) -> None:
    """Read some pages of a job; pages needing OCR found in a text-layer pass are re-enqueued one by one."""
    settings = get_settings()
    with session_scope() as session:
        job = repo.get_job(session, job_id)
        if job is None or JobState(job.state).is_final:
            return
        if job.cancel_requested:
            repo.skip_pending_pages(session, job_id, indices)
            todo: list[tuple[int, int]] = []
        else:
            todo = repo.pending_pages(session, job_id, indices)
    if todo:
        _read_pages(job, todo, ocr, settings, chain_start)
    finalize_job(job_id)


def _read_pages(
    job: Job, todo: list[tuple[int, int]], ocr: bool, settings: Settings, chain_start: int = 0
) -> None:
    options = JobOptions.model_validate(job.options)
    max_attempts = settings.worker.max_attempts
    poisoned = [index for index, attempts in todo if attempts >= max_attempts]
    if poisoned:
        _save(job.id, [(index, None, WorkerCrashed(attempts=max_attempts)) for index in poisoned])
    indices = [index for index, attempts in todo if attempts < max_attempts]
    # A first attempt counts the whole chunk at once; a retried chunk goes page by page so that only the
    # page that kills the worker collects attempts.
    retried = any(attempts > 0 for _, attempts in todo)
    if indices and not retried:
        with session_scope() as session:
            repo.count_attempt(session, job.id, indices)
    path = local_copy(get_blob_store(), job.source_key)
    needs_ocr: list[int] = []
    batch: list[tuple[int, PageResult | None, PagemillError | None]] = []
    last_flush = time.monotonic()
    # Slow pages (OCR, or a retry going page by page) look for a cancel before each page; text-layer pages
    # take a millisecond or two, so they look at each flush (every 32 pages or half a second) instead.
    check_each_page = ocr or retried
    chain = reading.engine_chain(options, settings)
    password = open_secret(job.document_password_sealed, settings)
    with open_source(path, DocumentKind(job.kind), password=password, limits=settings.limits) as source:
        for position, index in enumerate(indices):
            if check_each_page and _cancelled(job.id):
                break
            if retried:
                with session_scope() as session:
                    repo.count_attempt(session, job.id, [index])
            started = time.perf_counter()
            try:
                if ocr:
                    result = reading.ocr_page(source, index, chain, settings, chain_start)
                else:
                    text = reading.text_pass(source, index, options, settings)
                    if text is None:
                        needs_ocr.append(index)
                        continue
                    result = text
                result.timings_ms["total"] = (time.perf_counter() - started) * 1000
                batch.append((index, result, None))
            except TransientError:
                # Not a crash: the pages this task counted but did not finish get their attempt back, so a
                # retried outage does not end as WORKER_CRASHED. What was read so far is kept.
                _save(job.id, batch)
                counted = [index] if retried else [*indices[position:], *needs_ocr]
                with session_scope() as session:
                    repo.uncount_attempt(session, job.id, counted)
                raise
            except SoftTimeLimitExceeded:
                # The task is out of time: record this page as timed out, keep what is done, and end the
                # task; the pages not reached stay pending for the sweeper.
                batch.append((index, None, ProcessingTimeout(page=index + 1)))
                _save(job.id, batch)
                raise
            except PagemillError as exc:
                batch.append((index, None, exc))
            except Exception as exc:  # a bug or a parser failure on this page must not sink the whole job
                log.exception("page %s of job %s failed", index + 1, job.id)
                batch.append((index, None, ProcessingError("This page could not be read.", page=index + 1)))
                del exc
            if (
                ocr
                or retried
                or len(batch) >= _FLUSH_EVERY_PAGES
                or time.monotonic() - last_flush > _FLUSH_EVERY_S
            ):
                _save(job.id, batch)
                batch, last_flush = [], time.monotonic()
                if not check_each_page and _cancelled(job.id):
                    break
    _save(job.id, batch)
    if needs_ocr:
        with session_scope() as session:
            target, chain_start = ocr_route(options, settings)
            for index in needs_ocr:
                args = [job.id, [index], True, chain_start]
                queue.enqueue_after_commit(session, queue.PROCESS_PAGES, args, target, priority=job.priority)
            repo.uncount_attempt(session, job.id, needs_ocr)
            repo.refresh_progress(session, job.id)


def _cancelled(job_id: str) -> bool:
    with session_scope() as session:
        if not repo.cancel_requested(session, job_id):
            return False
        repo.skip_pending_pages(session, job_id)
        return True


def _save(job_id: str, batch: list[tuple[int, PageResult | None, PagemillError | None]]) -> None:
    """Write a batch of page outcomes in one transaction (two statements), then recount the job."""
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
                    "data": {
                        "settings": result.settings,
                        "timings_ms": result.timings_ms,
                        "lines": result.to_dict()["lines"],
                    },
                    "duration_ms": result.timings_ms.get("total"),
                }
            )
        elif error is not None:
            failed.append({"index": index, "error_code": error.code, "error_message": error.message})
    with session_scope() as session:
        repo.finish_pages(session, job_id, PageState.DONE, done)
        repo.finish_pages(session, job_id, PageState.FAILED, failed)
        repo.refresh_progress(session, job_id)
    for row in done:
        PAGES.labels(engine=row["engine"], outcome="done").inc()
    for row in failed:
        PAGES.labels(engine="-", outcome=row["error_code"]).inc()


def fail_pending_pages(job_id: str, indices: Sequence[int], error: PagemillError) -> None:
    """Give up on pages after their task's retries ran out (e.g. every engine stayed unavailable)."""
    with session_scope() as session:
        pending = [index for index, _ in repo.pending_pages(session, job_id, indices)]
    _save(job_id, [(index, None, error) for index in pending])
    finalize_job(job_id)


def finalize_job(job_id: str) -> None:
    """When no page is pending: write the results and end the job. Safe to call any number of times."""
    with session_scope() as session:
        job = repo.get_job(session, job_id)
        if job is None or JobState(job.state).is_final or job.pages_total is None:
            return
        all_final, done, failed = job_outcome(repo.page_state_counts(session, job_id))
        if not all_final:
            return
        options = JobOptions.model_validate(job.options)
        store = get_blob_store()
        files = write_results(job, repo.iter_pages(session, job_id), options.formats)
    try:
        for fmt, fileobj in files.items():
            store.put_file(result_key(job_id, fmt), fileobj, content_type=RESULT_MEDIA_TYPES[fmt])
    finally:
        for fileobj in files.values():
            fileobj.close()
    with session_scope() as session:
        if job.cancel_requested:
            state, error = JobState.CANCELLED, None
        elif done == 0 and failed > 0:
            code, message = repo.first_page_error(session, job_id)
            state = JobState.FAILED
            error = {
                "code": code or "PROCESSING_FAILED",
                "message": message or "No page could be read.",
                "details": {"pages_failed": failed},
            }
        else:
            state, error = JobState.SUCCEEDED, None
        repo.finish_job(session, job_id, state, error=error)
