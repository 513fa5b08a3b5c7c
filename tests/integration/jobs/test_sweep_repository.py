"""The sweeper's queries on real migrated databases (SQLite and Postgres): stalled jobs are claimed once,
oldest first, and two sweepers never claim the same job."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import event

from pagemill import db
from pagemill.jobs import sweep_repository as sweep_repo
from pagemill.models import JobState
from pagemill.models.base import utcnow
from tests.integration.jobs.test_repository import add_job, empty_tables, in_session, load_job

pytestmark = pytest.mark.integration

__all__ = ["empty_tables"]  # the autouse fixture, imported for this module's tests


def test_claim_stalled_jobs_takes_only_active_jobs_older_than_the_cutoff() -> None:
    now = utcnow()
    old_queued = add_job(updated_at=now - timedelta(hours=2), priority=9)
    old_running = add_job(state=JobState.RUNNING, updated_at=now - timedelta(hours=1), priority=3)
    add_job(state=JobState.RUNNING, updated_at=now - timedelta(minutes=1))
    add_job(state=JobState.SUCCEEDED, updated_at=now - timedelta(hours=3))
    add_job(state=JobState.CANCELLED, updated_at=now - timedelta(hours=3))
    add_job(state=JobState.FAILED, updated_at=now - timedelta(hours=3))
    cutoff = now - timedelta(minutes=10)

    # Each with its priority, so the sweeper re-enqueues it where its tier put it.
    claimed = in_session(lambda s: sweep_repo.claim_stalled_jobs(s, older_than=cutoff))
    assert claimed == [(old_queued, 9, 1), (old_running, 3, 1)]  # and the first re-enqueue in a row
    # Claiming touched them: the next sweep with the same cutoff finds nothing.
    assert in_session(lambda s: sweep_repo.claim_stalled_jobs(s, older_than=cutoff)) == []
    assert load_job(old_queued).updated_at > cutoff


def test_claim_stalled_jobs_respects_the_limit_oldest_first() -> None:
    now = utcnow()
    ids = [add_job(updated_at=now - timedelta(hours=10 - i), priority=i) for i in range(5)]
    cutoff = now - timedelta(minutes=10)
    first = in_session(lambda s: sweep_repo.claim_stalled_jobs(s, older_than=cutoff, limit=2))
    assert first == [(job_id, i, 1) for i, job_id in enumerate(ids)][:2]
    rest = in_session(lambda s: sweep_repo.claim_stalled_jobs(s, older_than=cutoff, limit=10))
    assert rest == [(job_id, i, 1) for i, job_id in enumerate(ids)][2:]


def test_two_concurrent_sweepers_never_claim_the_same_job() -> None:
    now = utcnow()
    ids = [add_job(updated_at=now - timedelta(hours=1, seconds=i)) for i in range(20)]
    cutoff = now - timedelta(minutes=10)

    # Hold each sweeper's first UPDATE until both have read their candidates: both then see all 20 jobs
    # as stalled, which is exactly the race the conditional update must settle.
    both_read = threading.Barrier(2, timeout=20)
    local = threading.local()

    def hold_first_update(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and not getattr(local, "held", False):
            local.held = True
            both_read.wait()

    def sweep() -> list[str]:
        with db.session_scope() as session:
            return [job.id for job in sweep_repo.claim_stalled_jobs(session, older_than=cutoff)]

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", hold_first_update)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first, second = (future.result(timeout=60) for future in [pool.submit(sweep), pool.submit(sweep)])
    finally:
        event.remove(engine, "before_cursor_execute", hold_first_update)

    assert not set(first) & set(second), f"both sweepers claimed {sorted(set(first) & set(second))}"
    assert sorted(first + second) == sorted(ids)
