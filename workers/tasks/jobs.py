"""Job tasks: parse ids, call one processing function. Transient failures retry with backoff and jitter."""

from __future__ import annotations

from celery import Task
from sqlalchemy.exc import OperationalError

from pagemill import queue
from pagemill.errors import EngineUnavailable, TransientError
from pagemill.jobs import processing
from pagemill.queue import get_celery

app = get_celery()

_RETRY = {
    # A database outage (OperationalError: connection refused or dropped) is transient too: without this the
    # message would be acked as failed and the job would wait for the sweeper.
    "autoretry_for": (TransientError, OperationalError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
}


@app.task(name=queue.INGEST_JOB, bind=True, **_RETRY)
def ingest_job(self: Task, job_id: str) -> None:
    """Open, check and plan a job's pages."""
    processing.ingest_job(job_id)


@app.task(name=queue.PROCESS_PAGES, bind=True, **_RETRY)
def process_pages(self: Task, job_id: str, indices: list[int], ocr: bool, chain_start: int = 0) -> None:
    """Read some pages of a job (``chain_start``: where OCR pages start in the engine chain)."""
    try:
        processing.process_pages(job_id, indices, ocr, chain_start)
    except EngineUnavailable as exc:
        if self.request.retries >= _RETRY["max_retries"]:
            # Every engine of the chain stayed unavailable through all retries: the pages fail with that
            # code instead of waiting for the sweeper forever.
            processing.fail_pending_pages(job_id, indices, exc)
            return
        raise
