"""The worker side of a job: open and plan it, send its page tasks, assemble its result.

Reading pages is :mod:`pagemill.jobs.page_work`. Every step is idempotent and re-entrant: messages carry
ids only, and the job's planning and ending are fenced on its state.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from pagemill import logging as pagemill_logging
from pagemill import queue
from pagemill.db import session_scope
from pagemill.dead_letters import service as dead_letters
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.probe import probe_document
from pagemill.engines.audio_registry import audio_engine_pool
from pagemill.engines.registry import engine_pool
from pagemill.errors import (
    PagemillError,
    TooManyPages,
    TransientError,
    WorkerCrashed,
)
from pagemill.events import service as events
from pagemill.events.types import EventType
from pagemill.jobs import audio_plan, claims, reading, url_source
from pagemill.jobs import claim_repository as claims_repo
from pagemill.jobs import repository as repo
from pagemill.jobs.local_files import local_copy
from pagemill.jobs.options import JobOptions, OcrMode, check_fits_kind, select_pages
from pagemill.jobs.results import job_outcome, write_results
from pagemill.jobs.service import RESULT_MEDIA_TYPES, result_key
from pagemill.models import Job, JobState, PageState
from pagemill.secret_box import open_secret
from pagemill.settings import Settings, get_settings
from pagemill.storage import get_blob_store

log = logging.getLogger(__name__)

_FLUSH_EVERY_PAGES = 32
_FLUSH_EVERY_S = 0.5


def fail_job(job_id: str, error: PagemillError) -> None:
    """End a job ``failed`` with a specific error (permanent errors only); one that spent its attempts (a
    crash, a timeout, a document that cannot be decoded) is recorded as a dead letter in the same
    transaction (pagemill.dead_letters)."""
    with session_scope() as session:
        facts = dead_letters.job_facts(session, job_id)  # before the end wipes the job's sealed password
        if repo.finish_job(session, job_id, JobState.FAILED, error=error.to_dict()):
            events.job_ended(session, job_id, JobState.FAILED)
            if facts is not None:
                task = dead_letters.TaskRef(queue.INGEST_JOB, [job_id])
                dead_letters.record_job_failure(session, facts, error, task=task)
            log.info("job %s failed: %s %s", job_id, error.code, error.message)


def ingest_job(job_id: str) -> bool:
    """Open the document in a sandbox, check it, create its pages and enqueue their reading; True when
    text-layer pages of the job wait on the CPU queue (a worker of that queue may start on them at once)."""
    settings = get_settings()
    with session_scope() as session:
        attempt = repo.start_job(session, job_id)
        if attempt == 1:
            events.job_event(session, job_id, EventType.JOB_STARTED, settings=settings)
        job = repo.get_job(session, job_id)
    if attempt is None or job is None:
        return False  # final already (finished, cancelled before start) or gone
    pagemill_logging.bind(job_id=job_id, tenant=job.tenant_id)
    if job.pages_total is None:
        # Only opening the document counts against the job's attempts: a re-planned job (after a lost
        # message) just re-sends its pending pages, whose own attempts are counted per page.
        if attempt > settings.worker.max_attempts:
            fail_job(job_id, WorkerCrashed(attempts=attempt - 1))
            return False
        try:
            if job.sha256 is None and job.source_url is not None:
                # A URL job: fetch its document first (SSRF-guarded, bounded retries), then go on as for
                # an upload. A fetch failure ends the job with its URL_* code.
                job = url_source.fetch_source(job, settings)
            if _plan(job, settings) and attempt == 1:
                # Its pages were sent as they were made (a recording's pieces): only the end is left. A
                # later attempt finds the pages of an earlier one, whose tasks the generic re-send covers.
                return _enqueue_pending(job_id, settings, send=False)
        except TransientError:
            raise
        except PagemillError as exc:
            fail_job(job_id, exc)
            return False
    return _enqueue_pending(job_id, settings)


def _plan(job: Job, settings: Settings) -> bool:
    """Open, check and plan the job; True when its pages were routed and sent as they were made."""
    # Known for every job but a URL job not fetched yet, and those are fetched before they are planned.
    assert job.kind is not None
    kind = DocumentKind(job.kind)
    options = JobOptions.model_validate(job.options)
    check_fits_kind(options, kind)  # a URL job's kind is known only now
    path = local_copy(get_blob_store(), job.source_key)
    if kind.is_audio:
        reading.require_engines_configured(options, settings, kind)
        # Pieces start as they are cut when every piece is read (a page range needs the count first).
        starter = _PieceStarter(job, options, settings) if options.page_range is None else None
        page_count = audio_plan.cut_and_store(job, path, settings, on_pieces=starter)
        if starter is None:
            _check_and_plan(job, options, page_count)
            return False
        starter.plan(page_count, _selected(job, options, page_count))
        return True
    password = open_secret(job.document_password_sealed, settings)
    try:
        # The document itself is held to the service-wide page cap (what opening it may cost)...
        info = probe_document(
            path,
            DocumentKind(job.kind),
            password=password,
            limits=settings.limits,
            office=options.read_options(),
        )
    except TooManyPages as exc:
        _record_page_count(job.id, exc.details.get("pages"))
        raise
    _record_page_count(job.id, info.page_count)  # known from here on, also if the job fails below
    _check_and_plan(job, options, info.page_count)
    return False


def _check_and_plan(job: Job, options: JobOptions, page_count: int) -> None:
    """Select the job's pages and create them (TooManyPages past the tier's cap, fixed at submission)."""
    indices = _selected(job, options, page_count)
    with session_scope() as session:
        repo.set_planned(session, job.id, page_count, indices)


def _selected(job: Job, options: JobOptions, page_count: int) -> list[int]:
    """The pages the job reads: its page range, held to the tier's cap (TooManyPages)."""
    indices = select_pages(options.page_range, page_count)
    # ... and the tier's cap (fixed at submission) counts the pages the job will read: its page range.
    if job.max_pages is not None and len(indices) > job.max_pages:
        raise TooManyPages(
            f"The job selects {len(indices)} pages; its tier allows {job.max_pages} per document "
            "(choose fewer with page_range).",
            pages=len(indices),
            page_count=page_count,
            max_pages=job.max_pages,
        )
    return list(indices)


class _PieceStarter:
    """Makes and sends the pages of a recording's pieces as they are stored, before the job is planned: the
    first pieces are transcribed while the rest of the recording is still being decoded. One task per page
    made, as :func:`_enqueue_pending` sends; a job past its tier's page cap gets no more than the cap."""

    def __init__(self, job: Job, options: JobOptions, settings: Settings) -> None:
        self._job = job
        self._options = options
        self._settings = settings
        self._route: repo.PageRoute | None = None
        self._made = 0

    def __call__(self, stored: int) -> None:
        """Make and send the pages of the pieces stored since the last call."""
        count = stored if self._job.max_pages is None else min(stored, self._job.max_pages)
        if count > self._made:
            with session_scope() as session:
                made = repo.add_pending_pages(session, self._job.id, range(self._made, count), self.route())
                self._send(session, made)
            self._made = count

    def plan(self, page_count: int, indices: list[int]) -> None:
        """Plan the job (its page count known now): make and send the pages not made yet."""
        with session_scope() as session:
            self._send(session, repo.set_planned(session, self._job.id, page_count, indices, self.route()))

    def route(self) -> repo.PageRoute:
        """The pool's queue and the chain's start for this job's pieces (fixed at the first piece)."""
        if self._route is None:
            assert self._job.kind is not None
            queue_name, start = ocr_route(self._options, self._settings, DocumentKind(self._job.kind))
            self._route = repo.PageRoute(queue_name, True, start)
        return self._route

    def _send(self, session: Session, pages: int) -> None:
        if pages:
            tasks = claims.tasks_for(pages, True, self._settings)
            queue.enqueue_page_tasks(session, self.route().queue, tasks, priority=self._job.priority)


def _record_page_count(job_id: str, page_count: object) -> None:
    if isinstance(page_count, int):
        with session_scope() as session:
            repo.set_page_count(session, job_id, page_count)


def ocr_route(options: JobOptions, settings: Settings, kind: DocumentKind | None = None) -> tuple[str, int]:
    """Where this job's OCR pages (a recording's pieces) go: the queue of the pool that runs the first
    healthy engine of the chain, and that engine's position in the chain."""
    chain = reading.engine_chain(options, settings, kind)
    start = reading.routed_start(chain, settings, kind)
    pool = audio_engine_pool if kind is not None and kind.is_audio else engine_pool
    return pool(chain[start]), start


def _enqueue_pending(job_id: str, settings: Settings, *, send: bool = True) -> bool:
    """Route the job's pending pages and send one page task per unit of work: text-layer pages in chunks of
    ``worker.pages_per_task`` on the CPU queue, OCR pages one by one on the queue of the pool that runs the
    OCR engine. A task names only its queue; the worker that receives it claims the next pages fairly.
    Without ``send`` (the pages were routed and sent as they were made) only the end below is left: a job
    with no pending page is finalized. True when text-layer pages wait on the CPU queue."""
    text_waiting = False
    with session_scope() as session:
        job = repo.get_job(session, job_id)
        if job is None:
            return False
        if send:
            text_waiting = _route_and_send(session, job, settings)
        pending = repo.page_state_counts(session, job_id).get(PageState.PENDING, 0)
    if not pending:
        finalize_job(job_id)
    return text_waiting


def _route_and_send(session: Session, job: Job, settings: Settings) -> bool:
    """Route the job's unclaimed pending pages and send their tasks; True when text-layer pages wait on the
    CPU queue."""
    options = JobOptions.model_validate(job.options)
    # Office pages always start with their structure (the text pass); only their pictures are OCR'd.
    kind = DocumentKind(job.kind) if job.kind else None
    text_first = kind is not None and (
        kind.is_office or (kind is DocumentKind.PDF and options.ocr_mode != OcrMode.OCR)
    )
    ocr_queue, chain_start = ocr_route(options, settings, kind)
    claims_repo.route_pending_pages(
        session, job.id, text_first=text_first, ocr_queue=ocr_queue, chain_start=chain_start
    )
    text_waiting = False
    for queue_name, ocr, pages in claims_repo.unclaimed_work(session, job.id):
        queue.enqueue_page_tasks(
            session, queue_name, claims.tasks_for(pages, ocr, settings), priority=job.priority
        )
        text_waiting = text_waiting or (queue_name == queue.CPU_QUEUE and not ocr)
    return text_waiting


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
        files = write_results(job, repo.iter_page_records(session, job_id), options.formats)
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
        if repo.finish_job(session, job_id, state, error=error, pages=(done, failed)):
            events.job_ended(session, job_id, state)
