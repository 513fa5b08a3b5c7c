"""Job tasks: parse ids, call one processing function. Transient failures retry with backoff and jitter."""

from __future__ import annotations

from celery import Task
from sqlalchemy.exc import OperationalError

from pagemill import logging as pagemill_logging
from pagemill import queue
from pagemill.errors import TransientError
from pagemill.jobs import page_work, processing
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
    """Open, check and plan a job's pages; on a worker that serves the CPU queue, start on its text layer."""
    pagemill_logging.bind(job_id=job_id)  # cleared when the task ends (workers.celery_app)
    text_waiting = processing.ingest_job(job_id)
    if text_waiting and queue.CPU_QUEUE in (self.app.amqp.queues.consume_from or {}):
        # This process has just opened the document: reading on from here saves the broker round trip
        # before the first pages (the page tasks just sent find them claimed, or read what is left).
        # Bounded like any page task (worker.claim_more_for_s), so the next ingest waits at most that long.
        try:
            page_work.read_next(queue.CPU_QUEUE)
        except page_work.PagesDeferred as exc:
            # Their engines are down: the pages wait, and a page task comes back for them when they may be
            # tried again (as a page task's own retry would), instead of this ingest being retried.
            read_pages.apply_async([queue.CPU_QUEUE], queue=queue.CPU_QUEUE, countdown=exc.delay_s)


@app.task(name=queue.READ_PAGES, bind=True, **_RETRY)
def read_pages(self: Task, queue_name: str) -> None:
    """Read the next pages waiting on ``queue_name`` (claimed fairly between tenants, see
    pagemill.jobs.claims). Pages whose engines are all unavailable wait in the database; the task comes
    back when they may be tried again (each page's waits are bounded by worker.max_deferrals)."""
    try:
        page_work.read_next(queue_name)
    except page_work.PagesDeferred as exc:
        raise self.retry(exc=exc, countdown=exc.delay_s, max_retries=None) from exc


@app.task(name=queue.PROCESS_PAGES, bind=True, **_RETRY)
def process_pages(self: Task, *_args: object) -> None:
    """A page task of an earlier version (its message named the pages): now one unit of work on the queue
    it came from."""
    origin = (self.request.delivery_info or {}).get("routing_key") or queue.CPU_QUEUE
    read_pages(origin)
