"""The sweeper on real migrated databases (SQLite and Postgres) and the real embedded broker: it re-enqueues
a job that stopped moving, a bounded number of times, then ends it; it ends cancelled jobs nothing stops
and jobs past their deadline. No worker runs: the tests play the lost message, the absent pool, the clock.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from pagemill import db, queue
from pagemill.jobs import repository as repo
from pagemill.jobs.options import OutputFormat
from pagemill.jobs.service import result_key
from pagemill.jobs.sweeper import sweep_stalled_jobs
from pagemill.models import Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.settings import Settings, WorkerSettings, get_settings
from pagemill.storage import get_blob_store
from tests.support.factories import make_job

pytestmark = [
    pytest.mark.integration,
    # kombu's SQLAlchemy transport (the embedded broker, publishing in this process) still uses noload.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

LEASE_S = 2
SETTINGS_UPDATE = {"lease_s": LEASE_S, "max_requeues": 2, "cancel_grace_s": 5, "job_deadline_s": 3600}


def _forget_broker() -> None:
    if queue.get_celery.cache_info().currsize:
        queue.get_celery().close()
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[str]:
    """Empty tables, and the broker and blob store of this module's data folder."""
    _forget_broker()
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    yield database
    _forget_broker()


@pytest.fixture
def settings() -> Settings:
    """The process's settings (this module's data folder and database) with a short lease and limits."""
    base = get_settings()
    return base.model_copy(update={"worker": WorkerSettings(**SETTINGS_UPDATE)})


def add_job(*, state: JobState = JobState.RUNNING, pages: dict[int, PageState] | None = None) -> str:
    """A job whose last progress is long past (and its pages, by index and state); its id."""
    job_id = str(uuid.uuid4())
    long_ago = utcnow() - timedelta(minutes=10)
    with db.session_scope() as session:
        repo.add_job(
            session,
            make_job(
                job_id,
                state=state,
                created_at=long_ago,
                updated_at=long_ago,
                started_at=long_ago,
            ),
        )
        if pages is not None:
            repo.set_planned(session, job_id, len(pages), sorted(pages))
            done = [
                {
                    "index": i,
                    "engine": "tesseract",
                    "text": f"page {i + 1} read",
                    "markdown": f"page {i + 1} read",
                }
                for i, page_state in pages.items()
                if page_state == PageState.DONE
            ]
            repo.finish_pages(session, job_id, PageState.DONE, done)
            repo.refresh_progress(session, job_id)
    age(job_id)
    return job_id


def age(job_id: str, *, updated: timedelta = timedelta(minutes=10), created: timedelta | None = None) -> None:
    """Move the job's last progress (and its submission) into the past, as time passing would."""
    values: dict[str, Any] = {"updated_at": utcnow() - updated}
    if created is not None:
        values["created_at"] = utcnow() - created
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def load_job(job_id: str) -> Job:
    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None
        return job


def page_states(job_id: str) -> dict[int, tuple[str, str | None]]:
    with db.session_scope() as session:
        return {p.index: (p.state, p.error_code) for p in repo.iter_pages(session, job_id)}


def ingest_messages(job_id: str) -> int:
    """How many ingest tasks for ``job_id`` the embedded broker holds."""
    broker = get_settings().data_dir / "broker.sqlite3"
    with sqlite3.connect(broker) as conn:
        rows = conn.execute(
            "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ?",
            (queue.INGEST_QUEUE,),
        ).fetchall()
    return sum(job_id in json.dumps(json.loads(payload)) for (payload,) in rows)


def test_a_job_without_progress_is_re_enqueued_a_bounded_number_of_times_then_failed(
    settings: Settings,
) -> None:
    job_id = add_job(pages={0: PageState.DONE, 1: PageState.PENDING, 2: PageState.PENDING})
    for sweep in (1, 2):
        assert sweep_stalled_jobs(settings) == [job_id]
        assert load_job(job_id).requeues == sweep
        assert ingest_messages(job_id) == sweep  # really published, after the claim committed
        age(job_id)

    assert sweep_stalled_jobs(settings) == []  # the third time: given up, not re-enqueued
    job = load_job(job_id)
    assert job.state == JobState.FAILED and job.error_code == "JOB_STALLED", job.error_message
    assert job.error_details == {"requeues": 2, "lease_s": LEASE_S}
    assert job.finished_at is not None and (job.pages_done, job.pages_failed) == (1, 2)
    assert page_states(job_id) == {
        0: (PageState.DONE, None),
        1: (PageState.FAILED, "JOB_STALLED"),
        2: (PageState.FAILED, "JOB_STALLED"),
    }
    assert ingest_messages(job_id) == 2
    age(job_id)
    assert sweep_stalled_jobs(settings) == []  # final: never touched again


def test_a_job_not_yet_opened_is_given_up_too(settings: Settings) -> None:
    job_id = add_job(state=JobState.QUEUED)  # its ingest message lost, again and again
    for _ in range(2):
        assert sweep_stalled_jobs(settings) == [job_id]
        age(job_id)
    sweep_stalled_jobs(settings)
    job = load_job(job_id)
    assert job.state == JobState.FAILED and job.error_code == "JOB_STALLED"


def test_a_finished_page_starts_the_count_again(settings: Settings) -> None:
    job_id = add_job(pages={0: PageState.PENDING, 1: PageState.PENDING})
    for _ in range(2):
        sweep_stalled_jobs(settings)
        age(job_id)
    assert load_job(job_id).requeues == 2
    with db.session_scope() as session:  # a worker reads a page: progress
        repo.finish_pages(session, job_id, PageState.DONE, [{"index": 0, "text": "x", "markdown": "x"}])
        repo.refresh_progress(session, job_id)
    assert load_job(job_id).requeues == 0
    with db.session_scope() as session:  # a touch that finishes no page is no progress
        repo.refresh_progress(session, job_id)
    age(job_id)
    assert sweep_stalled_jobs(settings) == [job_id]
    assert load_job(job_id).requeues == 1


def test_a_worker_taking_its_pages_starts_the_count_again(settings: Settings) -> None:
    job_id = add_job(pages={0: PageState.PENDING})
    sweep_stalled_jobs(settings)
    assert load_job(job_id).requeues == 1
    with db.session_scope() as session:  # a worker takes the page (waiting in a backlog, not lost)
        repo.count_attempt(session, job_id, [0])
    assert load_job(job_id).requeues == 0


def test_a_job_past_its_deadline_is_failed_even_while_it_moves(settings: Settings) -> None:
    job_id = add_job(pages={0: PageState.DONE, 1: PageState.PENDING})
    age(job_id, updated=timedelta(0), created=timedelta(hours=2))
    assert sweep_stalled_jobs(settings) == []
    job = load_job(job_id)
    assert job.state == JobState.FAILED and job.error_code == "PROCESSING_TIMEOUT"
    assert job.error_details == {"deadline_s": 3600}
    assert page_states(job_id)[1] == (PageState.FAILED, "PROCESSING_TIMEOUT")


def test_a_cancelled_job_nothing_stops_ends_cancelled_with_its_partial_result(settings: Settings) -> None:
    job_id = add_job(pages={0: PageState.DONE, 1: PageState.PENDING})
    with db.session_scope() as session:
        repo.request_cancel(session, job_id)
    assert sweep_stalled_jobs(settings) == []  # within the grace: its worker may still stop it
    assert load_job(job_id).state == JobState.RUNNING

    age(job_id, updated=timedelta(seconds=6))
    sweep_stalled_jobs(settings)
    job = load_job(job_id)
    assert job.state == JobState.CANCELLED and job.error_code is None
    assert page_states(job_id) == {0: (PageState.DONE, None), 1: (PageState.SKIPPED, None)}
    text = b"".join(get_blob_store().iter_chunks(result_key(job_id, OutputFormat.TEXT)))
    assert b"page 1 read" in text


def test_a_cancelled_job_not_yet_opened_ends_cancelled_without_pages(settings: Settings) -> None:
    job_id = add_job()
    with db.session_scope() as session:
        repo.request_cancel(session, job_id)
    age(job_id)
    sweep_stalled_jobs(settings)
    job = load_job(job_id)
    assert job.state == JobState.CANCELLED and job.pages_total is None

    # A worker that was opening it meanwhile plans no pages for it.
    with db.session_scope() as session:
        repo.set_planned(session, job_id, 3, [0, 1, 2])
    assert page_states(job_id) == {} and load_job(job_id).pages_total is None
