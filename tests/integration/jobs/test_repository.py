"""The job repository on real migrated databases: SQLite (embedded mode) and Postgres (distributed mode).

Every test runs on both. Each step runs in its own ``session_scope`` (one committed transaction), the way
the API and the workers use the repository, so fencing is tested across transactions, not inside one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event
from sqlalchemy.orm import Session

from pagemill import db
from pagemill.jobs import repository as repo
from pagemill.jobs import service
from pagemill.migrate import upgrade_to_head
from pagemill.models import DEFAULT_TENANT, Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.tenancy.repository import ensure_tenant
from tests.support.factories import make_job

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> str:
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    return database


def add_job(
    *,
    state: JobState = JobState.QUEUED,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    sealed_password: str | None = None,
    job_id: str | None = None,
    tenant_id: str = DEFAULT_TENANT,
    priority: int = 0,
) -> str:
    """Insert and commit one job (of the migration's ``default`` tenant unless told); its id."""
    job_id = job_id or str(uuid.uuid4())
    now = utcnow()
    with db.session_scope() as session:
        repo.add_job(
            session,
            make_job(
                job_id,
                tenant_id=tenant_id,
                priority=priority,
                state=state,
                document_password_sealed=sealed_password,
                created_at=created_at or now,
                updated_at=updated_at or created_at or now,
            ),
        )
    return job_id


def in_session(action: Callable[[Session], Any]) -> Any:
    """Run ``action`` in its own committed transaction and return its result."""
    with db.session_scope() as session:
        return action(session)


def load_job(job_id: str) -> Job:
    job = in_session(lambda s: repo.get_job(s, job_id))
    assert job is not None
    return job  # type: ignore[no-any-return]


def load_page(job_id: str, index: int) -> Page:
    page = in_session(lambda s: repo.get_page(s, job_id, index))
    assert page is not None
    return page  # type: ignore[no-any-return]


def test_migrating_to_head_again_is_a_quiet_no_op() -> None:
    # Runs on the already migrated database: a second `pagemill migrate` must neither fail nor warn.
    upgrade_to_head()


# --- starting and planning ----------------------------------------------------------------------------------


def test_start_job_counts_attempts_and_keeps_the_first_start_time() -> None:
    job_id = add_job()
    assert in_session(lambda s: repo.start_job(s, job_id)) == 1
    first = load_job(job_id)
    assert first.state == JobState.RUNNING and first.attempts == 1 and first.started_at is not None

    assert in_session(lambda s: repo.start_job(s, job_id)) == 2  # redelivered: running jobs restart
    again = load_job(job_id)
    assert again.attempts == 2
    assert again.started_at == first.started_at


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_start_job_refuses_final_jobs(state: JobState) -> None:
    job_id = add_job(state=state)
    assert in_session(lambda s: repo.start_job(s, job_id)) is None
    job = load_job(job_id)
    assert job.state == state and job.attempts == 0 and job.started_at is None


def test_start_job_after_finish_returns_none() -> None:
    job_id = add_job()
    in_session(lambda s: repo.start_job(s, job_id))
    assert in_session(lambda s: repo.finish_job(s, job_id, JobState.SUCCEEDED)) is True
    assert in_session(lambda s: repo.start_job(s, job_id)) is None
    assert load_job(job_id).attempts == 1


def test_start_job_of_an_unknown_job_returns_none() -> None:
    assert in_session(lambda s: repo.start_job(s, str(uuid.uuid4()))) is None


def test_set_planned_is_idempotent() -> None:
    job_id = add_job()
    in_session(lambda s: repo.set_planned(s, job_id, 10, [0, 2, 4]))
    in_session(lambda s: repo.set_planned(s, job_id, 10, [0, 2, 4]))
    # A retried ingest that plans differently changes nothing either: the first plan stands.
    in_session(lambda s: repo.set_planned(s, job_id, 12, list(range(12))))

    assert in_session(lambda s: repo.page_state_counts(s, job_id)) == {PageState.PENDING: 3}
    assert in_session(lambda s: repo.pending_pages(s, job_id)) == [(0, 0), (2, 0), (4, 0)]
    job = load_job(job_id)
    assert job.page_count == 10 and job.pages_total == 3


def test_pieces_made_before_the_plan_are_kept_by_it() -> None:
    # A recording's pieces get pending, routed pages as they are cut; the plan then makes the rest.
    job_id = add_job(state=JobState.RUNNING)
    route = repo.PageRoute("gpu", True, 1)
    assert in_session(lambda s: repo.add_pending_pages(s, job_id, range(0, 3), route)) == 3
    assert in_session(lambda s: repo.add_pending_pages(s, job_id, range(2, 5), route)) == 2  # 2 existed
    assert load_job(job_id).pages_total is None  # not planned yet: the job cannot end
    assert in_session(lambda s: repo.set_planned(s, job_id, 7, list(range(7)), route)) == 2
    assert in_session(lambda s: repo.add_pending_pages(s, job_id, [7], route)) == 0  # planned: no more
    with db.session_scope() as session:
        pages = session.query(Page).filter(Page.job_id == job_id).order_by(Page.index).all()
        assert [(p.index, p.queue, p.ocr, p.chain_start) for p in pages] == [
            (i, "gpu", True, 1) for i in range(7)
        ]
    job = load_job(job_id)
    assert (job.page_count, job.pages_total) == (7, 7)


def test_no_pieces_are_made_for_a_job_that_ended() -> None:
    job_id = add_job(state=JobState.CANCELLED)
    route = repo.PageRoute("cpu", True, 0)
    assert in_session(lambda s: repo.add_pending_pages(s, job_id, [0, 1], route)) == 0
    assert in_session(lambda s: repo.page_state_counts(s, job_id)) == {}


def test_the_page_count_is_kept_when_the_job_fails_before_planning() -> None:
    job_id = add_job(state=JobState.RUNNING)
    in_session(lambda s: repo.set_page_count(s, job_id, 30))
    in_session(lambda s: repo.set_page_count(s, job_id, 31))  # the first count stands
    error = {"code": "TOO_MANY_PAGES", "message": "Too many.", "details": {}}
    in_session(lambda s: repo.finish_job(s, job_id, JobState.FAILED, error=error))
    job = load_job(job_id)
    assert (job.state, job.page_count, job.pages_total) == (JobState.FAILED, 30, None)


def test_set_planned_writes_large_plans_in_batches() -> None:
    job_id = add_job()
    in_session(lambda s: repo.set_planned(s, job_id, 2345, list(range(2345))))
    assert in_session(lambda s: repo.page_state_counts(s, job_id)) == {PageState.PENDING: 2345}
    assert load_job(job_id).pages_total == 2345


# --- pages and progress ------------------------------------------------------------------------------------


def test_finish_pages_is_fenced() -> None:
    job_id = add_job(state=JobState.RUNNING)
    in_session(lambda s: repo.set_planned(s, job_id, 3, [0, 1, 2]))

    first = [
        {"index": 0, "text": "first", "engine": "text_layer", "duration_ms": 5.0, "data": {"lines": []}},
        {"index": 2, "text": "third", "engine": "tesseract", "rotation": 90},
    ]
    in_session(lambda s: repo.finish_pages(s, job_id, PageState.DONE, first))
    done = load_page(job_id, 0)
    assert done.state == PageState.DONE and done.text == "first" and done.data == {"lines": []}
    assert load_page(job_id, 2).rotation == 90

    late = [{"index": 0, "error_code": "PROCESSING_FAILED", "error_message": "late duplicate"}]
    in_session(lambda s: repo.finish_pages(s, job_id, PageState.FAILED, late))
    page = load_page(job_id, 0)
    assert page.state == PageState.DONE
    assert page.text == "first" and page.engine == "text_layer"
    assert page.error_code is None and page.error_message is None
    assert page.finished_at == done.finished_at

    assert load_page(job_id, 1).state == PageState.PENDING
    in_session(lambda s: repo.finish_pages(s, job_id, PageState.DONE, [{"index": 7, "text": "x"}]))
    assert in_session(lambda s: repo.page_state_counts(s, job_id)) == {
        PageState.DONE: 2,
        PageState.PENDING: 1,
    }


def test_refresh_progress_recounts_and_touches_the_job() -> None:
    long_ago = utcnow() - timedelta(hours=1)
    job_id = add_job(state=JobState.RUNNING, updated_at=long_ago)
    in_session(lambda s: repo.set_planned(s, job_id, 4, [0, 1, 2, 3]))
    in_session(lambda s: repo.finish_pages(s, job_id, PageState.DONE, [{"index": 0}, {"index": 1}]))
    in_session(lambda s: repo.finish_pages(s, job_id, PageState.FAILED, [{"index": 2, "error_code": "X"}]))
    in_session(lambda s: repo.refresh_progress(s, job_id))
    in_session(lambda s: repo.refresh_progress(s, job_id))  # recounting twice never double counts
    job = load_job(job_id)
    assert (job.pages_done, job.pages_failed) == (2, 1)
    assert job.updated_at > long_ago + timedelta(minutes=59)


def test_a_save_adds_what_its_statements_moved_to_the_counters() -> None:
    long_ago = utcnow() - timedelta(hours=1)
    job_id = add_job(state=JobState.RUNNING, updated_at=long_ago)
    in_session(lambda s: repo.set_planned(s, job_id, 4, [0, 1, 2, 3]))

    def save(done: list[int], failed: list[int]) -> repo.ProgressCounts | None:
        def action(s: Session) -> repo.ProgressCounts | None:
            moved_done = repo.finish_pages(s, job_id, PageState.DONE, [{"index": i} for i in done])
            moved_failed = repo.finish_pages(
                s, job_id, PageState.FAILED, [{"index": i, "error_code": "X"} for i in failed]
            )
            return repo.add_progress(s, job_id, done=moved_done, failed=moved_failed)

        result: repo.ProgressCounts | None = in_session(action)
        return result

    first = save([0, 1], [2])
    assert first is not None and (first.pages_done, first.pages_failed, first.pages_total) == (2, 1, 4)
    # A duplicate of pages already final moves nothing, so it adds nothing; only page 3 counts.
    second = save([0, 3], [1])
    assert second is not None and (second.pages_done, second.pages_failed) == (3, 1)
    job = load_job(job_id)
    assert (job.pages_done, job.pages_failed) == (3, 1)
    assert job.updated_at > long_ago + timedelta(minutes=59)
    assert in_session(lambda s: repo.add_progress(s, "no-such-job", done=1, failed=0)) is None


def test_iter_pages_streams_every_page_in_order_in_batches() -> None:
    job_id = add_job(state=JobState.RUNNING)
    in_session(lambda s: repo.set_planned(s, job_id, 450, list(range(450))))
    rows = [{"index": index, "text": f"text of {index}"} for index in (0, 199, 200, 449)]
    in_session(lambda s: repo.finish_pages(s, job_id, PageState.DONE, rows))

    page_queries: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM pages" in statement:
            page_queries.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        with db.session_scope() as session:
            pages = list(repo.iter_pages(session, job_id, batch=200))
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert [page.index for page in pages] == list(range(450))
    assert all(page.job_id == job_id for page in pages)
    assert {page.index: page.text for page in pages if page.text} == {
        i: f"text of {i}" for i in (0, 199, 200, 449)
    }
    assert len(page_queries) == 4  # 200 + 200 + 50 + the empty batch that ends it; never all at once


def test_iter_pages_of_a_job_without_pages_yields_nothing() -> None:
    job_id = add_job()
    assert in_session(lambda s: list(repo.iter_pages(s, job_id))) == []


# --- ending and cancelling ---------------------------------------------------------------------------------


def test_finish_job_only_once() -> None:
    job_id = add_job(state=JobState.RUNNING, sealed_password="gAAAA-sealed")
    error = {"code": "CORRUPT_FILE", "message": "The file is damaged.", "details": {"page": 3}}
    assert in_session(lambda s: repo.finish_job(s, job_id, JobState.FAILED, error=error)) is True
    finished = load_job(job_id)

    assert in_session(lambda s: repo.finish_job(s, job_id, JobState.SUCCEEDED)) is False
    job = load_job(job_id)
    assert job.state == JobState.FAILED
    assert (job.error_code, job.error_message, job.error_details) == (
        "CORRUPT_FILE",
        "The file is damaged.",
        {"page": 3},
    )
    assert job.document_password_sealed is None
    assert job.finished_at is not None and job.finished_at == finished.finished_at


def test_a_queued_job_can_be_finished() -> None:
    job_id = add_job()
    assert in_session(lambda s: repo.finish_job(s, job_id, JobState.CANCELLED)) is True
    assert load_job(job_id).state == JobState.CANCELLED


def test_cancelling_a_queued_job_cancels_it_at_once() -> None:
    job_id = add_job(sealed_password="gAAAA-sealed")
    in_session(lambda s: repo.request_cancel(s, job_id))
    job = load_job(job_id)
    assert job.state == JobState.CANCELLED
    assert job.cancel_requested is True
    assert job.finished_at is not None
    assert job.document_password_sealed is None
    # A worker that receives the job's message afterwards must not run it.
    assert in_session(lambda s: repo.start_job(s, job_id)) is None


def test_cancelling_a_running_job_only_sets_the_flag() -> None:
    job_id = add_job(state=JobState.RUNNING, sealed_password="gAAAA-sealed")
    in_session(lambda s: repo.request_cancel(s, job_id))
    job = load_job(job_id)
    assert job.state == JobState.RUNNING
    assert job.cancel_requested is True
    assert job.finished_at is None
    assert job.document_password_sealed == "gAAAA-sealed"  # the worker still needs it until it stops
    assert in_session(lambda s: repo.cancel_requested(s, job_id)) is True


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED])
def test_cancelling_a_finished_job_changes_nothing(state: JobState) -> None:
    job_id = add_job(state=state)
    in_session(lambda s: repo.request_cancel(s, job_id))
    job = load_job(job_id)
    assert job.state == state and job.cancel_requested is False


# --- listing -----------------------------------------------------------------------------------------------


def _listing_fixture() -> list[str]:
    """Six jobs, three of them created at the same instant; their ids newest first, ties by id descending."""
    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    newest = add_job(created_at=base + timedelta(seconds=3))
    just_after_tie = add_job(created_at=base + timedelta(seconds=2, microseconds=1))
    tied = sorted((add_job(created_at=base + timedelta(seconds=2)) for _ in range(3)), reverse=True)
    oldest = add_job(created_at=base + timedelta(seconds=1))
    return [newest, just_after_tie, *tied, oldest]


def test_list_jobs_newest_first_ties_broken_by_id() -> None:
    expected = _listing_fixture()
    listed = in_session(
        lambda s: [
            job.id for job in repo.list_jobs(s, tenant_id=DEFAULT_TENANT, state=None, limit=100, after=None)
        ]
    )
    assert listed == expected


def test_list_jobs_after_a_cursor_inside_a_tie() -> None:
    expected = _listing_fixture()
    tie_member = load_job(expected[3])
    after = (tie_member.created_at, tie_member.id)
    listed = in_session(
        lambda s: [
            job.id for job in repo.list_jobs(s, tenant_id=DEFAULT_TENANT, state=None, limit=100, after=after)
        ]
    )
    assert listed == expected[4:]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 6, 7])
def test_paging_with_cursors_visits_every_job_once_in_order(limit: int) -> None:
    expected = _listing_fixture()
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(expected) + 1):
        jobs, cursor = in_session(
            lambda s, after=cursor: service.list_jobs(
                s, DEFAULT_TENANT, state=None, limit=limit, cursor=after
            )
        )
        assert len(jobs) <= limit
        seen.extend(job.id for job in jobs)
        if cursor is None:
            break
    assert cursor is None
    assert seen == expected


def test_list_jobs_filters_by_state() -> None:
    expected = _listing_fixture()
    in_session(lambda s: repo.start_job(s, expected[2]))
    in_session(lambda s: repo.start_job(s, expected[5]))
    running = in_session(
        lambda s: [
            job.id
            for job in repo.list_jobs(
                s, tenant_id=DEFAULT_TENANT, state=JobState.RUNNING, limit=10, after=None
            )
        ]
    )
    assert running == [expected[2], expected[5]]


def test_a_tenant_lists_and_finds_only_its_own_jobs() -> None:
    in_session(lambda s: ensure_tenant(s, "other-tenant", "free"))
    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    mine = [add_job(created_at=base + timedelta(seconds=i)) for i in range(3)]
    theirs = [add_job(created_at=base + timedelta(seconds=i), tenant_id="other-tenant") for i in range(2)]

    def listed(tenant_id: str) -> list[str]:
        with db.session_scope() as session:
            jobs = repo.list_jobs(session, tenant_id=tenant_id, state=None, limit=10, after=None)
            return [job.id for job in jobs]

    assert listed(DEFAULT_TENANT) == mine[::-1]
    assert listed("other-tenant") == theirs[::-1]
    assert in_session(lambda s: repo.get_tenant_job(s, DEFAULT_TENANT, mine[0])).id == mine[0]
    assert in_session(lambda s: repo.get_tenant_job(s, "other-tenant", mine[0])) is None
    assert in_session(lambda s: repo.get_tenant_job(s, DEFAULT_TENANT, theirs[0])) is None
