"""Time limits of page work: which limit a claim reads under, and what a page over it becomes.

A claim is one OCR page (``image_page`` for a page of an image document, ``document_page`` for a rendered
PDF page) or one chunk of text-layer pages (``text_chunk``), read under :func:`pagemill.deadlines.limited`
with ``worker.time_limits`` of its kind. A page over the limit (the soft one noticed by a call, or the hard
alarm) was tried once more: with attempts left it is given back and read again (alone, with a fresh limit);
on its last attempt (``worker.max_attempts``) it fails PROCESSING_TIMEOUT and becomes a dead letter of
category ``timeout``. Every such page, and every text chunk stopped at its soft limit (its unread pages are
given back, their attempt not counted), counts in ``pagemill_processing_timeouts_total{kind}``.
"""

from __future__ import annotations

import logging

from pagemill.deadlines import Deadline, HardTimeLimitExceeded
from pagemill.documents.kinds import DocumentKind
from pagemill.errors import ProcessingTimeout
from pagemill.metrics import PROCESSING_TIMEOUTS
from pagemill.settings import Settings
from pagemill.settings.time_limits import TimeLimit, WorkKind

log = logging.getLogger(__name__)


def work_kind(kind: DocumentKind, ocr: bool) -> WorkKind:
    """The kind of work a claim of a ``kind`` document is: an OCR page (of an image, or of a PDF) or a chunk
    of text-layer pages."""
    if kind.is_audio:
        return WorkKind.AUDIO_CHUNK
    if not ocr:
        return WorkKind.TEXT_CHUNK
    return WorkKind.IMAGE_PAGE if kind.is_image else WorkKind.DOCUMENT_PAGE


def limit_of(kind: WorkKind, settings: Settings) -> TimeLimit:
    """The time limit of ``kind`` of work."""
    return settings.worker.time_limits.of(kind)


def page_timed_out(
    deadline: Deadline, job_id: str, index: int, attempts: int, settings: Settings, cause: BaseException
) -> ProcessingTimeout | None:
    """A page went over its time on its try number ``attempts`` (``cause``: a call's PROCESSING_TIMEOUT, the
    hard alarm, or Celery's task limit): counted, and its PROCESSING_TIMEOUT when that was its last attempt
    (it fails), else None (it is given back to be read again)."""
    PROCESSING_TIMEOUTS.labels(kind=deadline.kind).inc()
    if isinstance(cause, ProcessingTimeout):
        error = cause  # a call's own timeout (ocr.timeout_s, say) may have come before the page's
        error.details.setdefault("kind", deadline.kind)
        error.details.setdefault("page", index + 1)
    elif isinstance(cause, HardTimeLimitExceeded):
        error = deadline.error(page=index + 1, hard=True)
    else:
        limit = settings.worker.task_soft_time_limit_s
        error = ProcessingTimeout(
            f"Reading the page took longer than its task may run ({limit} s).",
            page=index + 1,
            kind=deadline.kind,
            limit_s=limit,
        )
    if attempts >= settings.worker.max_attempts:
        log.warning("page %d of job %s: %s; its last attempt, failed", index + 1, job_id, error.message)
        if error is not cause:
            error.__cause__ = cause
        return error
    log.warning(
        "page %d of job %s: %s (attempt %d of %d); given back to be read again",
        index + 1,
        job_id,
        error.message,
        attempts,
        settings.worker.max_attempts,
    )
    return None


def chunk_stopped(deadline: Deadline, job_id: str, unread: int) -> None:
    """A text chunk reached its soft limit between pages: counted and logged (its unread pages go back)."""
    PROCESSING_TIMEOUTS.labels(kind=deadline.kind).inc()
    log.warning(
        "job %s: text-layer chunk past its soft limit (%g s) after %.1f s; %d unread page(s) given back",
        job_id,
        deadline.soft_s,
        deadline.elapsed(),
        unread,
    )
