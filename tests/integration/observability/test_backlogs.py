"""What waits on each queue, read from real migrated databases (SQLite and Postgres), and the job counters
taken at commit (not on rollback)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from pagemill import db
from pagemill.events import service as events
from pagemill.jobs import repository as repo
from pagemill.metrics import JOB_DURATION, JOBS_COMPLETED, JOBS_SUBMITTED, WEBHOOK_DELIVERIES
from pagemill.models import DeliveryState, Event, Job, JobState, Page, WebhookDelivery
from pagemill.models.base import utcnow
from pagemill.observability import job_metrics
from pagemill.observability.service import age_s, read_backlogs
from tests.support.factories import make_job

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> str:
    with db.session_scope() as session:
        session.execute(delete(WebhookDelivery))
        session.execute(delete(Event))
        session.execute(delete(Page))
        session.execute(delete(Job))
    return database


def _job(state: JobState, *, created_s_ago: float, **fields: object) -> str:
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(
            session,
            make_job(job_id, state=state, created_at=utcnow() - timedelta(seconds=created_s_ago), **fields),
        )
    return job_id


def _pages(job_id: str, count: int, queue: str, *, claimed: int = 0) -> None:
    with db.session_scope() as session:
        repo.set_planned(session, job_id, count, list(range(count)))
        session.execute(update(Page).where(Page.job_id == job_id).values(queue=queue))
        if claimed:
            session.execute(
                update(Page)
                .where(Page.job_id == job_id, Page.index < claimed)
                .values(claim_id=uuid.uuid4().hex, claimed_by="test:1")
            )


def _delivery(due_s_ago: float, state: DeliveryState = DeliveryState.PENDING) -> None:
    with db.session_scope() as session:
        event = Event(event_id=str(uuid.uuid4()), tenant_id="default", type="job.succeeded", data={})
        session.add(event)
        session.flush()
        session.add(
            WebhookDelivery(
                id=str(uuid.uuid4()),
                target="callback",
                url="https://example.com/hook",
                event_pk=event.id,
                event_id=event.event_id,
                event_type=event.type,
                tenant_id="default",
                state=state,
                next_attempt_at=utcnow() - timedelta(seconds=due_s_ago),
            )
        )


def test_backlogs_count_what_waits_and_how_long(database: str) -> None:
    # Ingest: jobs not started yet; the oldest was submitted 40 s ago.
    _job(JobState.QUEUED, created_s_ago=40)
    _job(JobState.QUEUED, created_s_ago=5)
    # cpu: a running job served 30 s ago with 4 pages, 1 of them being read (not waiting)...
    served = _job(JobState.RUNNING, created_s_ago=600, last_claimed_at=utcnow() - timedelta(seconds=30))
    _pages(served, 4, "cpu", claimed=1)
    # ... and one never served, started 120 s ago: the longest wait.
    starved = _job(JobState.RUNNING, created_s_ago=200, started_at=utcnow() - timedelta(seconds=120))
    _pages(starved, 2, "cpu")
    # Pages of an ended job do not wait for anything.
    ended = _job(JobState.FAILED, created_s_ago=900)
    _pages(ended, 5, "cpu")
    # gpu: a job whose pages are all taken.
    busy = _job(JobState.RUNNING, created_s_ago=60)
    _pages(busy, 2, "gpu", claimed=2)
    # webhooks: two deliveries due (one failed earlier, retrying), one not due yet, one done.
    _delivery(15)
    _delivery(3, DeliveryState.FAILED)
    _delivery(-60)
    _delivery(100, DeliveryState.SUCCEEDED)

    now = utcnow()
    backlogs = read_backlogs(now)
    assert {name: backlog.depth for name, backlog in backlogs.items()} == {
        "ingest": 2,
        "cpu": 5,
        "gpu": 0,
        "webhooks": 2,
    }
    assert age_s(backlogs["ingest"], now) == pytest.approx(40, abs=3)
    assert age_s(backlogs["cpu"], now) == pytest.approx(120, abs=3)
    assert age_s(backlogs["gpu"], now) == 0
    assert age_s(backlogs["webhooks"], now) == pytest.approx(15, abs=3)


def _value(metric: object, **labels: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count")) and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_job_counts_are_taken_at_commit_and_dropped_on_rollback(database: str) -> None:
    submitted = _value(JOBS_SUBMITTED, kind="image")
    with pytest.raises(RuntimeError), db.session_scope() as session:
        job_metrics.count_submitted(session, "image")
        raise RuntimeError("the submission's transaction fails")
    assert _value(JOBS_SUBMITTED, kind="image") == submitted
    with db.session_scope() as session:
        job_metrics.count_submitted(session, "image")
        assert _value(JOBS_SUBMITTED, kind="image") == submitted, "not before the commit"
    assert _value(JOBS_SUBMITTED, kind="image") == submitted + 1

    job_id = _job(JobState.RUNNING, created_s_ago=30, kind="image")
    completed = _value(JOBS_COMPLETED, kind="image", outcome="succeeded")
    durations = _value(JOB_DURATION, kind="image")
    with db.session_scope() as session:
        assert repo.finish_job(session, job_id, JobState.SUCCEEDED)
        events.job_ended(session, job_id, JobState.SUCCEEDED)
    assert _value(JOBS_COMPLETED, kind="image", outcome="succeeded") == completed + 1
    assert _value(JOB_DURATION, kind="image") == durations + 1
    # Expiring later counts the outcome, but is no job duration.
    with db.session_scope() as session:
        events.job_ended(session, job_id, JobState.EXPIRED)
    assert _value(JOBS_COMPLETED, kind="image", outcome="expired") >= 1
    assert _value(JOB_DURATION, kind="image") == durations + 1


def test_a_url_job_not_fetched_yet_counts_as_unknown(database: str) -> None:
    job_id = _job(JobState.RUNNING, created_s_ago=5, kind=None)
    failed = _value(JOBS_COMPLETED, kind="unknown", outcome="failed")
    with db.session_scope() as session:
        assert repo.finish_job(session, job_id, JobState.FAILED)
        events.job_ended(session, job_id, JobState.FAILED)
    assert _value(JOBS_COMPLETED, kind="unknown", outcome="failed") == failed + 1


def test_webhook_outcomes_are_counted_at_commit(database: str) -> None:
    dead = _value(WEBHOOK_DELIVERIES, outcome="dead")
    with db.session_scope() as session:
        job_metrics.count_webhook_attempt(session, DeliveryState.DEAD)
    assert _value(WEBHOOK_DELIVERIES, outcome="dead") == dead + 1
