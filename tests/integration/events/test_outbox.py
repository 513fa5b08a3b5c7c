"""The event outbox on real migrated databases: every job change writes its event in the same transaction,
numbered per job with no gap, and each final change exactly one final event."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cloudevents.core.formats.json import JSONFormat
from sqlalchemy import delete, select, update

from pagemill import db
from pagemill.events import service as events
from pagemill.events.service import FinishedPage
from pagemill.events.types import EventType, envelope_json
from pagemill.jobs import repository as repo
from pagemill.jobs import service as jobs
from pagemill.jobs.processing import finalize_job
from pagemill.models import Batch, Event, Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy.principal import Actor
from tests.support.factories import make_job

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[None]:
    get_blob_store.cache_clear()
    with db.session_scope() as session:
        for model in (Event, Page, Job, Batch):
            session.execute(delete(model))
    yield
    get_blob_store.cache_clear()


def _events(job_id: str) -> list[Event]:
    with db.session_scope() as session:
        rows = session.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id)).all()
        session.expunge_all()
        return list(rows)


def _queued_job(**fields: object) -> str:
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id, **fields))
        session.flush()
        events.job_event(session, job_id, EventType.JOB_QUEUED)
    return job_id


def _finish_pages(job_id: str, indices: list[int], *, counts: bool = True) -> None:
    """Save pages as a worker does; ``counts``: job_progress decides from the recount's counts first (the
    worker's way), else by its statement alone."""
    now = utcnow()
    rows = [
        {"index": i, "engine": "text_layer", "text": f"page {i}", "markdown": f"page {i}"} for i in indices
    ]
    with db.session_scope() as session:
        repo.finish_pages(session, job_id, PageState.DONE, rows, now=now)
        recount = repo.refresh_progress(session, job_id)
        finished = [FinishedPage(i, PageState.DONE, engine="text_layer") for i in indices]
        events.pages_completed(session, job_id, finished, finished_at=now)
        events.job_progress(session, job_id, counts=recount if counts else None)


@pytest.mark.parametrize("counts", [True, False], ids=["decided-from-counts", "by-statement"])
def test_a_job_run_writes_its_events_in_order_with_no_gap(counts: bool) -> None:
    job_id = _queued_job()
    with db.session_scope() as session:
        assert repo.start_job(session, job_id) == 1
        events.job_event(session, job_id, EventType.JOB_STARTED)
        repo.set_planned(session, job_id, 20, list(range(20)))
    # Twenty saves of one page each within the throttle's second: a progress event for the first finished
    # page, then one per further tenth (2 pages), never one per save.
    for index in range(20):
        _finish_pages(job_id, [index], counts=counts)
    finalize_job(job_id)

    rows = _events(job_id)
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    types = [row.type for row in rows]
    assert types[:2] == ["job.queued", "job.started"]
    assert types[-1] == "job.succeeded"
    progress = [row for row in rows if row.type == "job.progress"]
    assert 10 <= len(progress) <= 11, types
    done_counts = [row.data["pages"]["done"] for row in progress]
    assert done_counts == sorted(done_counts) and done_counts[-1] == 20
    final = rows[-1].data
    assert final["state"] == "succeeded" and final["pages"] == {"total": 20, "done": 20, "failed": 0}
    assert set(final["results"]) == {"markdown", "text", "json"}
    # Page events are off unless a sink wants them (events.page_events=subscribed, no subscriber here).
    assert "job.page_completed" not in types


@pytest.mark.parametrize("counts", [True, False], ids=["decided-from-counts", "by-statement"])
def test_a_progress_event_is_due_again_after_the_interval_without_a_tenth_crossed(counts: bool) -> None:
    job_id = _queued_job(state=JobState.RUNNING)
    with db.session_scope() as session:
        repo.set_planned(session, job_id, 100, list(range(100)))
    _finish_pages(job_id, [0], counts=counts)  # the first finished page: due
    _finish_pages(job_id, [1], counts=counts)  # within the second, no tenth crossed: not due
    with db.session_scope() as session:
        interval = get_settings().events.progress_interval_s
        old = utcnow() - timedelta(seconds=interval + 1)
        session.execute(update(Job).where(Job.id == job_id).values(progress_event_at=old))
    _finish_pages(job_id, [2], counts=counts)  # the interval has passed: due
    _finish_pages(job_id, [2], counts=counts)  # nothing new finished: not due, however long since
    progress = [row.data["pages"]["done"] for row in _events(job_id) if row.type == "job.progress"]
    assert progress == [1, 3]


def test_the_envelope_is_a_valid_cloudevent() -> None:
    job_id = _queued_job()
    (row,) = _events(job_id)
    event = JSONFormat().read(None, envelope_json(row))  # type: ignore[arg-type]
    assert event.get_type() == "com.pagemill.job.queued"
    assert event.get_source() == f"/api/v1/jobs/{job_id}"
    assert event.get_id() == row.event_id and event.get_subject() == job_id
    assert event.get_data() == {**row.data}
    assert row.data["state"] == "queued" and row.data["job_id"] == job_id


def test_page_events_are_written_once_per_page_this_save_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings().events, "page_events", "always")
    job_id = _queued_job(state=JobState.RUNNING)
    with db.session_scope() as session:
        repo.set_planned(session, job_id, 4, list(range(4)))
    _finish_pages(job_id, [0, 1])
    _finish_pages(job_id, [1, 2])  # page 1 again (a duplicate delivery): it was finished already
    pages = [row.data["page"]["number"] for row in _events(job_id) if row.type == "job.page_completed"]
    assert pages == [1, 2, 3]


def test_cancelling_a_queued_job_writes_cancelled_and_nothing_after() -> None:
    job_id = _queued_job()
    with db.session_scope() as session:
        jobs.cancel_job(session, "default", job_id, actor=Actor(subject="test"))
    finalize_job(job_id)
    assert [row.type for row in _events(job_id)] == ["job.queued", "job.cancelled"]


def test_the_last_job_of_a_batch_completes_it_once() -> None:
    batch_id = str(uuid.uuid4())
    with db.session_scope() as session:
        session.add(Batch(id=batch_id, tenant_id="default", options={}, items_total=2))
    first, second = (_queued_job(state=JobState.RUNNING, batch_id=batch_id) for _ in range(2))
    barrier = threading.Barrier(2)

    def end(job_id: str) -> None:
        with db.session_scope() as session:
            barrier.wait(timeout=10)
            assert repo.finish_job(session, job_id, JobState.FAILED, error=_ERROR)
            events.job_ended(session, job_id, JobState.FAILED)

    # Both jobs end at the same moment (on Postgres, in concurrent transactions): one of them sees the
    # other final and completes the batch; neither may miss it, and it completes once.
    threads = [threading.Thread(target=end, args=(job_id,)) for job_id in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with db.session_scope() as session:
        rows = session.scalars(select(Event).where(Event.type == "batch.completed")).all()
        assert len(rows) == 1
        assert rows[0].batch_id == batch_id and rows[0].data["jobs"] == {"failed": 2}
        assert session.get(Batch, batch_id).completed_at is not None  # type: ignore[union-attr]


def test_concurrent_writers_of_one_job_share_one_gapless_sequence() -> None:
    job_id = _queued_job(state=JobState.RUNNING)

    def write() -> None:
        for _ in range(10):
            with db.session_scope() as session:
                events.job_event(session, job_id, EventType.JOB_STARTED)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    rows = _events(job_id)
    assert sorted(row.seq for row in rows) == list(range(1, 32))
    # Committed in sequence order: the global order agrees with the job's.
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)


_ERROR = {"code": "PROCESSING_FAILED", "message": "no", "details": {}}


def test_an_event_never_outlives_its_rolled_back_change() -> None:
    job_id = _queued_job()
    with pytest.raises(RuntimeError), db.session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.CANCELLED))
        events.job_ended(session, job_id, JobState.CANCELLED)
        raise RuntimeError("roll back")
    assert [row.type for row in _events(job_id)] == ["job.queued"]


def test_with_events_off_nothing_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings().events, "enabled", False)
    job_id = _queued_job(state=JobState.RUNNING)
    with db.session_scope() as session:
        repo.set_planned(session, job_id, 2, [0, 1])
    _finish_pages(job_id, [0, 1])
    finalize_job(job_id)
    assert _events(job_id) == []
    with db.session_scope() as session:
        assert repo.get_job(session, job_id).state == JobState.SUCCEEDED  # type: ignore[union-attr]
