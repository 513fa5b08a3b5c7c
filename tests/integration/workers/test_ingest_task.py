"""The ingest task on a worker that also serves the CPU queue: after planning a born-digital job it reads the
text layer itself instead of waiting for a broker round trip (on real migrated databases and the embedded
broker; the task body is called as a worker's pool process calls it, no worker runs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from pagemill import db, queue
from pagemill.jobs import repository as repo
from pagemill.models import Job, JobState, Page, PageState
from pagemill.storage import get_blob_store
from tests.support.documents import make_scanned_pdf, make_text_pdf
from tests.support.factories import make_job
from workers.tasks import jobs as job_tasks

pytestmark = [
    pytest.mark.integration,
    # kombu's SQLAlchemy transport (the embedded broker) maps its tables with a loader SQLAlchemy deprecates.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


@pytest.fixture(autouse=True)
def process_state(database: str) -> Iterator[None]:
    """This module's database, blob folder and broker, as a fresh worker process would make them."""
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    yield
    if queue.get_celery.cache_info().currsize:
        queue.get_celery().close()
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()


def submitted(path: Path, **options: str) -> str:
    """A queued job of ``path`` with its original stored, as the API leaves it; its id."""
    job_id = str(uuid.uuid4())
    with path.open("rb") as handle:
        get_blob_store().put_file(f"jobs/{job_id}/source", handle)
    with db.session_scope() as session:
        job = make_job(job_id, options={"formats": ["markdown", "text", "json"], **options})
        repo.add_job(session, job)
    return job_id


def states(job_id: str) -> tuple[str, dict[str, int]]:
    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None
        return job.state, repo.page_state_counts(session, job_id)


def test_the_ingest_task_reads_a_born_digital_job_itself(tmp_path: Path) -> None:
    pages = [f"Page {n} of a born-digital report." for n in range(1, 7)]
    job_id = submitted(make_text_pdf(tmp_path / "text.pdf", pages))
    assert queue.CPU_QUEUE in job_tasks.app.amqp.queues.consume_from

    job_tasks.ingest_job.run(job_id)

    state, counts = states(job_id)
    assert (state, counts) == (JobState.SUCCEEDED, {PageState.DONE: 6}), "read and finished in the task"
    assert get_blob_store().exists(f"jobs/{job_id}/result.md")


def test_the_ingest_task_leaves_ocr_pages_to_page_tasks(tmp_path: Path) -> None:
    """An OCR page takes seconds: the ingest task returns at once (the next job's ingest is not held behind
    it) and the page waits for the page task that was sent for it."""
    job_id = submitted(make_scanned_pdf(tmp_path / "scan.pdf", ["A scanned page"]), ocr_mode="ocr")

    job_tasks.ingest_job.run(job_id)

    assert states(job_id) == (JobState.RUNNING, {PageState.PENDING: 1})
