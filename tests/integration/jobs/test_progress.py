"""Live progress on real migrated databases (SQLite and Postgres) and the real blob store: the estimate's
queries (pages ahead, the pool's rate), a running job's pages as they finish, and its result so far.

The tests play the workers: pages are claimed and finished the way page work does it, each step its own
committed transaction.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from pagemill import db
from pagemill.errors import Conflict, NotFound, ResultExpired
from pagemill.jobs import processing, progress
from pagemill.jobs import repository as repo
from pagemill.jobs.options import OutputFormat
from pagemill.models import Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy.principal import Actor
from pagemill.tenancy.repository import ensure_tenant
from tests.support.factories import make_job

pytestmark = pytest.mark.integration

ACTOR = Actor(subject="test")
T0 = utcnow() - timedelta(minutes=10)


@pytest.fixture(autouse=True)
def empty_tables(database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # Every estimate counts afresh (the API reuses a queue's counts for a second); one test turns it on.
    monkeypatch.setattr(progress, "SNAPSHOT_TTL_S", 0.0)
    get_blob_store.cache_clear()  # the store of this module's data dir
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    return database


def add_job(
    pages: int | None,
    *,
    tenant: str = "default",
    priority: int = 0,
    created_s: float = 0,
    state: JobState = JobState.RUNNING,
    queue: str = "cpu",
) -> str:
    """A job of ``tenant`` created ``created_s`` after T0, with ``pages`` pending pages on ``queue`` (none
    planned when None); its id."""
    job_id = str(uuid.uuid4())
    created = T0 + timedelta(seconds=created_s)
    with db.session_scope() as session:
        if tenant != "default":
            ensure_tenant(session, tenant, tier="enterprise")
        job = make_job(job_id, tenant_id=tenant, priority=priority, state=state, created_at=created)
        repo.add_job(session, job)
    if pages is not None:
        with db.session_scope() as session:
            repo.set_planned(session, job_id, pages, list(range(pages)))
            session.execute(update(Page).where(Page.job_id == job_id).values(queue=queue, ocr=True))
    return job_id


def claim(job_id: str, indices: list[int]) -> None:
    """A worker holds these pages (they are read now, not waiting)."""
    with db.session_scope() as session:
        session.execute(
            update(Page)
            .where(Page.job_id == job_id, Page.index.in_(indices))
            .values(claim_id=uuid.uuid4().hex, claimed_by="test:1", attempts=Page.attempts + 1)
        )


def finish(job_id: str, indices: list[int], *, state: PageState = PageState.DONE, ago_s: float = 0) -> None:
    """Pages read by a worker ``ago_s`` seconds ago (failed ones: with an error)."""
    claim(job_id, indices)
    rows: list[dict[str, Any]] = [
        {
            "index": index,
            "engine": "tesseract",
            "text": f"text of page {index + 1}",
            "markdown": f"# page {index + 1}",
            "error_code": "ENGINE_FAILED",
            "error_message": "unreadable",
        }
        for index in indices
    ]
    with db.session_scope() as session:
        repo.finish_pages(session, job_id, state, rows, now=utcnow() - timedelta(seconds=ago_s))
        repo.refresh_progress(session, job_id)


def estimate(job_id: str) -> progress.Estimate:
    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None
        return progress.estimate(session, job, get_settings())


# --- The estimate ---------------------------------------------------------------------------------------


def test_queue_position_counts_what_the_fair_scheduler_serves_first() -> None:
    older = add_job(10, tenant="acme", created_s=1)
    job = add_job(4, tenant="acme", created_s=2)
    add_job(10, tenant="acme", created_s=3)  # newer, same tenant: after the job
    add_job(100, tenant="big", created_s=0)  # takes turns with acme: 8 + 4 of its pages go first
    add_job(2, tenant="small", created_s=0)
    add_job(3, tenant="vip", priority=5, created_s=9)  # a higher priority: all first
    add_job(50, tenant="cheap", priority=-1, created_s=0)  # a lower priority: after
    add_job(7, tenant="gpu-user", created_s=0, queue="gpu")  # another queue
    add_job(9, tenant="done", created_s=0, state=JobState.SUCCEEDED)  # final jobs wait for nothing
    claim(older, [0, 1])  # being read: not waiting any more

    found = estimate(job)
    assert found.queue_position == 3 + 8 + min(100, 8 + 4) + 2
    assert found.eta_s is None  # no page was read on the queue in the last minute: no rate


def test_the_jobs_own_pages_being_read_still_count_as_its_work() -> None:
    job = add_job(4)
    claim(job, [0, 1])
    finish(add_job(6), list(range(6)), ago_s=10)
    # 6 pages in about 10 s: 0.6 pages/s; the job's 4 pending pages (2 of them being read) take ~6.7 s.
    found = estimate(job)
    assert found.queue_position == 0
    assert found.eta_s == pytest.approx(4 / 0.6, abs=0.3)


def test_eta_adds_the_pages_ahead_to_the_jobs_own_at_the_pools_rate() -> None:
    add_job(6, created_s=0)
    job = add_job(4, created_s=1)
    finish(add_job(10, created_s=-1), list(range(10)), ago_s=20)  # 0.5 pages/s
    found = estimate(job)
    assert found.queue_position == 6
    assert found.eta_s == pytest.approx((6 + 4) / 0.5, abs=0.5)


def test_the_rate_counts_only_pages_a_worker_read_in_the_last_minute() -> None:
    job = add_job(2)
    other = add_job(12)
    finish(other, [0, 1, 2, 3], ago_s=120)  # too long ago
    finish(other, [4, 5], ago_s=10, state=PageState.FAILED)  # read, failed: the pool's time all the same
    with db.session_scope() as session:
        repo.skip_pending_pages(session, other, [6, 7, 8])  # a cancel skips pages: no work
        repo.fail_pending_pages(session, other, "JOB_STALLED", "given up")  # 9..11, never tried
    found = estimate(job)
    assert found.eta_s == pytest.approx(2 / (2 / 10), abs=0.3)


def test_a_job_whose_pages_are_not_planned_has_a_position_but_no_eta() -> None:
    add_job(5, created_s=0)
    finish(add_job(3, created_s=-5), [0, 1, 2], ago_s=5)
    queued = add_job(None, created_s=1, state=JobState.QUEUED)
    assert estimate(queued) == progress.Estimate(queue_position=5, eta_s=None)


def test_a_job_with_every_page_read_is_at_the_front() -> None:
    job = add_job(2)
    finish(job, [0, 1])
    add_job(5, priority=9)
    assert estimate(job) == progress.Estimate(queue_position=0, eta_s=0.0)


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED])
def test_a_final_job_has_no_estimate(state: JobState) -> None:
    add_job(5, created_s=0)
    assert estimate(add_job(3, created_s=1, state=state)) == progress.Estimate()


def test_a_queues_counts_are_shared_for_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "SNAPSHOT_TTL_S", 3600.0)
    add_job(5, created_s=0)
    job = add_job(2, created_s=1)
    assert estimate(job).queue_position == 5
    add_job(7, priority=9)  # not seen until the snapshot is older than its time to live
    assert estimate(job).queue_position == 5
    monkeypatch.setattr(progress, "SNAPSHOT_TTL_S", 0.0)
    assert estimate(job).queue_position == 12


# --- Pages as they finish ------------------------------------------------------------------------------


def listing(job_id: str, after: int = 0, limit: int = 20) -> progress.FinishedPages:
    with db.session_scope() as session:
        found = progress.finished_pages(session, "default", job_id, after=after, limit=limit)
        session.expunge_all()
        return found


def numbers(found: progress.FinishedPages) -> list[int]:
    return [page.index + 1 for page in found.pages]


def test_the_listing_stops_before_a_page_still_being_read() -> None:
    job = add_job(4)
    finish(job, [0, 1, 3])  # page 3 is still being read; page 4 finished before it
    first = listing(job)
    assert (numbers(first), first.next_after, first.has_more) == ([1, 2], 2, True)
    assert first.pages[0].text == "text of page 1"

    finish(job, [2])
    second = listing(job, after=first.next_after)
    assert (numbers(second), second.next_after, second.has_more) == ([3, 4], 4, True)  # still running

    processing.finalize_job(job)
    last = listing(job, after=second.next_after)
    assert (numbers(last), last.next_after, last.has_more) == ([], 4, False)
    assert last.job.state == JobState.SUCCEEDED


def test_failed_pages_are_listed_and_skipped_ones_passed_over() -> None:
    job = add_job(5)
    finish(job, [0])
    finish(job, [2], state=PageState.FAILED)
    with db.session_scope() as session:
        repo.skip_pending_pages(session, job, [1, 3, 4])
        repo.finish_job(session, job, JobState.CANCELLED)
    found = listing(job)
    assert numbers(found) == [1, 3]
    assert found.pages[1].state == PageState.FAILED and found.pages[1].error_code == "ENGINE_FAILED"
    assert (found.next_after, found.has_more) == (5, False)


def test_the_listing_pages_by_limit() -> None:
    job = add_job(5)
    finish(job, [0, 1, 2, 3, 4])
    first = listing(job, limit=2)
    assert (numbers(first), first.next_after, first.has_more) == ([1, 2], 2, True)
    assert numbers(listing(job, after=2, limit=2)) == [3, 4]


def test_a_job_not_planned_yet_lists_nothing_and_has_more() -> None:
    job = add_job(None, state=JobState.QUEUED)
    found = listing(job)
    assert (found.pages, found.next_after, found.has_more) == ([], 0, True)


def test_pages_of_another_tenant_or_of_an_expired_job_are_not_listed() -> None:
    with pytest.raises(NotFound):
        listing(add_job(2, tenant="other"))
    with pytest.raises(ResultExpired):
        listing(add_job(2, state=JobState.EXPIRED))


# --- The result so far ---------------------------------------------------------------------------------


def result(job_id: str, fmt: OutputFormat, *, partial: bool) -> tuple[bytes, dict[str, str]]:
    with db.session_scope() as session:
        found = progress.open_result(
            session, get_blob_store(), "default", job_id, fmt, actor=ACTOR, partial=partial
        )
        return b"".join(found.chunks), found.headers


def test_the_result_so_far_of_a_running_job_has_its_finished_pages_in_order() -> None:
    job = add_job(3)
    finish(job, [2])
    finish(job, [0])
    body, headers = result(job, OutputFormat.MARKDOWN, partial=True)
    assert body.decode() == "<!-- page 1 -->\n\n# page 1\n\n<!-- page 3 -->\n\n# page 3"
    assert headers == {
        "Pagemill-Partial": "true",
        "Pagemill-Pages-Done": "2",
        "Pagemill-Pages-Failed": "0",
        "Pagemill-Pages-Total": "3",
    }
    document = json.loads(result(job, OutputFormat.JSON, partial=True)[0])
    assert document["partial"] is True and document["pages_total"] == 3
    assert [page["page"] for page in document["pages"]] == [1, 3]
    assert result(job, OutputFormat.TEXT, partial=True)[0] == b"text of page 1\ftext of page 3"

    with pytest.raises(Conflict):  # without partial, as before: no result until the job has ended
        result(job, OutputFormat.MARKDOWN, partial=False)


def test_a_finished_job_answers_its_stored_result_with_partial_too() -> None:
    job = add_job(2)
    finish(job, [0, 1])
    processing.finalize_job(job)
    full, plain_headers = result(job, OutputFormat.MARKDOWN, partial=False)
    same, headers = result(job, OutputFormat.MARKDOWN, partial=True)
    assert same == full and b"<!-- page 2 -->" in full
    assert plain_headers == {} and headers == {"Pagemill-Partial": "false"}


def test_a_failed_job_gives_what_was_read_before_it_failed() -> None:
    job = add_job(3)
    finish(job, [0])
    with db.session_scope() as session:
        repo.finish_job(session, job, JobState.FAILED, error={"code": "X", "message": "x", "details": {}})
        repo.fail_pending_pages(session, job, "PROCESSING_TIMEOUT", "too slow")
    body, headers = result(job, OutputFormat.TEXT, partial=True)
    assert body == b"text of page 1\f\f"  # page 1, then the two failed pages (no text)
    assert headers["Pagemill-Pages-Done"] == "1" and headers["Pagemill-Pages-Failed"] == "2"


def test_partial_still_refuses_a_format_not_asked_for_and_an_expired_job() -> None:
    job = add_job(1)
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == job).values(options={"formats": ["text"]}))
    with pytest.raises(NotFound):
        result(job, OutputFormat.MARKDOWN, partial=True)
    with pytest.raises(ResultExpired):
        result(add_job(1, state=JobState.EXPIRED), OutputFormat.MARKDOWN, partial=True)
