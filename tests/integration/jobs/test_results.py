"""Fetching a result (docs/api.md, GET /api/v1/jobs/{job_id}/result) on real migrated databases and the real
blob store: a cancelled job has a result only if a page was read before the cancel.

The job goes the way a worker takes it: started, planned, cancelled between pages (its pending pages
skipped), then finalized by ``processing.finalize_job``, which writes the result files and ends it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import delete

from pagemill import db
from pagemill.errors import Conflict
from pagemill.jobs import processing, service
from pagemill.jobs import repository as repo
from pagemill.jobs.options import OutputFormat
from pagemill.models import DEFAULT_TENANT, Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.storage import get_blob_store
from pagemill.tenancy.principal import Actor
from tests.support.factories import make_job

pytestmark = pytest.mark.integration

ACTOR = Actor(subject="test")


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> str:
    get_blob_store.cache_clear()  # the store of this module's data dir
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    return database


def cancelled_job(pages_read_before_cancel: int, pages: int = 3) -> str:
    """A job a worker opened (``pages`` planned), read some pages of, then stopped for a cancel."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    with db.session_scope() as session:
        repo.add_job(
            session,
            make_job(job_id, created_at=now, updated_at=now),
        )
    with db.session_scope() as session:
        repo.start_job(session, job_id)
        repo.set_planned(session, job_id, pages, list(range(pages)))
    read: list[dict[str, Any]] = [
        {
            "index": index,
            "engine": "text_layer",
            "model": None,
            "rotation": 0,
            "text": f"text of page {index + 1}",
            "markdown": f"text of page {index + 1}",
            "data": {"settings": {}, "timings_ms": {}, "lines": []},
            "duration_ms": 1.0,
        }
        for index in range(pages_read_before_cancel)
    ]
    with db.session_scope() as session:
        repo.finish_pages(session, job_id, PageState.DONE, read)
        repo.refresh_progress(session, job_id)
        repo.request_cancel(session, job_id)
    with db.session_scope() as session:
        repo.skip_pending_pages(session, job_id)
        repo.refresh_progress(session, job_id)
    processing.finalize_job(job_id)
    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None and job.state == JobState.CANCELLED and job.pages_total == pages
    return job_id


def fetch(job_id: str, fmt: OutputFormat) -> bytes:
    with db.session_scope() as session:
        chunks, _ = service.open_result(session, get_blob_store(), DEFAULT_TENANT, job_id, fmt, actor=ACTOR)
        return b"".join(chunks)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_cancelled_before_any_page_was_read_has_no_result(fmt: OutputFormat) -> None:
    # Not a 200 with an empty document (form feeds, or page markers and nothing else).
    job_id = cancelled_job(pages_read_before_cancel=0)
    with pytest.raises(Conflict) as caught:
        fetch(job_id, fmt)
    assert caught.value.details["state"] == JobState.CANCELLED
    assert caught.value.details["pages_done"] == 0
    assert "before any page was read" in caught.value.message


def test_cancelled_after_a_page_was_read_has_the_partial_result() -> None:
    job_id = cancelled_job(pages_read_before_cancel=1)
    assert fetch(job_id, OutputFormat.TEXT) == b"text of page 1\f\f"
    assert fetch(job_id, OutputFormat.MARKDOWN).startswith(b"<!-- page 1 -->\n\ntext of page 1\n\n")
