"""Streams against a real Postgres, where event ids can become visible out of order: a transaction that
took the lower id commits after one with a higher id. The tenant stream (which resumes on the global id)
must wait for the late one and deliver both in order; a job's stream must not wait for another job's id;
an id whose transaction rolled back is given up after events.stream_gap_wait_s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Iterator

import pytest
from sqlalchemy import delete

from pagemill import db
from pagemill.events import repository as events_repo
from pagemill.events import service as events
from pagemill.events import streams
from pagemill.events.hub import StreamEvent
from pagemill.events.types import EventType
from pagemill.jobs import repository as repo
from pagemill.models import Event, Job, JobState, Tenant
from pagemill.settings import Settings, get_settings
from tests.support.factories import make_job

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# Only Postgres lets a lower id commit after a higher one (SQLite has one writer at a time).
pytestmark.append(pytest.mark.parametrize("database", ["postgres"], indirect=True))

GAP_WAIT_S = 1.5


@pytest.fixture
def anyio_backend() -> str:
    """The hub runs on asyncio (uvicorn's loop)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[None]:
    with db.session_scope() as session:
        session.execute(delete(Event))
        session.execute(delete(Job))
        for tenant in ("t", "u"):
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant, tier="standard"))
    yield


@pytest.fixture
def settings(database: str) -> Settings:
    """Fast polls and a short wait for missing ids (a fresh hub per test: each test has its own loop)."""
    base = get_settings()
    return base.model_copy(
        update={
            "events": base.events.model_copy(update={"stream_poll_s": 0.05, "stream_gap_wait_s": GAP_WAIT_S})
        }
    )


def _job(tenant: str) -> str:
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id, tenant_id=tenant, state=JobState.RUNNING))
    return job_id


def _newest() -> int:
    with db.session_scope() as session:
        return events_repo.last_event_id(session)


async def _next(stream: AsyncGenerator[StreamEvent], timeout: float = 5) -> StreamEvent:
    return await asyncio.wait_for(anext(stream), timeout)


async def test_a_late_commit_is_delivered_in_id_order_and_a_job_stream_does_not_wait(
    settings: Settings,
) -> None:
    early_job, late_job = _job("t"), _job("t")
    tenant = streams.tenant_stream("t", None, _newest(), settings)
    job = streams.job_stream(streams.JobStreamStart(late_job, ended=False, caught_up=False), 0, settings)
    pending = asyncio.ensure_future(_next(tenant, timeout=30))
    await asyncio.sleep(0.2)  # subscribed

    # The early transaction takes the lower id and stays open; the late one takes the next id and commits.
    with db.session_scope() as early:
        events.job_event(early, early_job, EventType.JOB_STARTED, settings=settings)
        early.flush()
        with db.session_scope() as late:
            events.job_event(late, late_job, EventType.JOB_STARTED, settings=settings)
        # The late job's stream has its event at once, the gap before it notwithstanding.
        seen = await _next(job)
        assert (seen.job_id, seen.seq, seen.type) == (late_job, 1, "job.started")
        await asyncio.sleep(0.5)
        assert not pending.done()  # the tenant stream waits for the lower id
    first = await pending
    second = await _next(tenant)
    assert (first.job_id, second.job_id) == (early_job, late_job)
    assert first.id < second.id
    await tenant.aclose()
    await job.aclose()


async def test_a_rolled_back_id_is_given_up_after_the_wait(settings: Settings) -> None:
    doomed_job, kept_job = _job("t"), _job("t")
    tenant = streams.tenant_stream("t", None, _newest(), settings)
    pending = asyncio.ensure_future(_next(tenant, timeout=30))
    await asyncio.sleep(0.2)

    doomed = db.session_scope()
    session = doomed.__enter__()
    events.job_event(session, doomed_job, EventType.JOB_STARTED, settings=settings)
    session.flush()
    with db.session_scope() as kept:
        events.job_event(kept, kept_job, EventType.JOB_STARTED, settings=settings)
    started = time.monotonic()
    await asyncio.sleep(0.3)
    doomed.__exit__(RuntimeError, RuntimeError("rolled back"), None)
    event = await pending
    waited = time.monotonic() - started
    assert event.job_id == kept_job
    # Not before the wait was over, and not much later.
    assert GAP_WAIT_S - 0.2 <= waited <= GAP_WAIT_S + 3
    await tenant.aclose()


async def test_a_resumed_tenant_stream_reads_the_database_then_goes_on_live(settings: Settings) -> None:
    job_id = _job("t")
    other = _job("u")
    with db.session_scope() as session:
        events.job_event(session, job_id, EventType.JOB_STARTED, settings=settings)
        events.job_event(session, other, EventType.JOB_STARTED, settings=settings)
    tenant = streams.tenant_stream("t", frozenset({"job.started", "job.succeeded"}), 0, settings)
    replayed = await _next(tenant)
    assert (replayed.job_id, replayed.type) == (job_id, "job.started")
    with db.session_scope() as session:
        events.job_event(session, job_id, EventType.JOB_QUEUED, settings=settings)  # filtered out
        events.job_event(session, other, EventType.JOB_SUCCEEDED, settings=settings)  # another tenant's
        events.job_event(session, job_id, EventType.JOB_SUCCEEDED, settings=settings)
    live = await _next(tenant)
    assert (live.job_id, live.type) == (job_id, "job.succeeded") and live.id > replayed.id
    await tenant.aclose()
