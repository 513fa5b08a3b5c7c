"""Ending a job (pagemill.jobs.processing.finalize_job) on real migrated databases: the final page counts are
recounted, whatever the running counters said."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, update

from pagemill import db
from pagemill.jobs import repository as repo
from pagemill.jobs.processing import finalize_job
from pagemill.models import Job, JobState, Page, PageState
from pagemill.storage import get_blob_store
from tests.support.factories import make_job

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[None]:
    get_blob_store.cache_clear()
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    yield
    get_blob_store.cache_clear()


def test_the_finished_job_carries_the_recounted_pages() -> None:
    """A save's running recount can miss a save that committed meanwhile (Postgres counts in the statement's
    snapshot): here the counters lag by 2 pages, and the finished job must not."""
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id, state=JobState.RUNNING))
    with db.session_scope() as session:
        repo.set_planned(session, job_id, 5, list(range(5)))
        session.execute(update(Page).where(Page.job_id == job_id).values(state=PageState.DONE, text="t"))
        session.execute(
            update(Page).where(Page.job_id == job_id, Page.index == 4).values(state=PageState.FAILED)
        )
        session.execute(update(Job).where(Job.id == job_id).values(pages_done=2, pages_failed=1))

    finalize_job(job_id)

    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None
        assert (job.state, job.pages_done, job.pages_failed) == (JobState.SUCCEEDED, 4, 1)
