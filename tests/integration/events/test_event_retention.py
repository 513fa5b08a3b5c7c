"""Event retention on real migrated databases: the sweeper deletes events older than events.retention_s, in
bounded batches, oldest first, and keeps recent events and those the relay has not handed on yet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select

from pagemill import db
from pagemill.events import repository as repo
from pagemill.jobs.sweeper import sweep_stalled_jobs
from pagemill.models import Event
from pagemill.models.base import utcnow
from pagemill.retention import service as retention
from pagemill.settings import Settings, get_settings

pytestmark = pytest.mark.integration

RETENTION_S = 3600


@pytest.fixture(autouse=True)
def empty_events(database: str) -> Iterator[None]:
    with db.session_scope() as session:
        session.execute(delete(Event))
    yield


def settings() -> Settings:
    base = get_settings()
    return base.model_copy(update={"events": base.events.model_copy(update={"retention_s": RETENTION_S})})


def add_event(
    age_s: float, *, relayed: bool = True, label: str = "", relayed_age_s: float | None = None
) -> None:
    """An event written ``age_s`` ago, handed to its sinks then (or ``relayed_age_s`` ago, or not yet)."""
    time = utcnow() - timedelta(seconds=age_s)
    relayed_at = time if relayed_age_s is None else utcnow() - timedelta(seconds=relayed_age_s)
    row = {
        "event_id": str(uuid.uuid4()),
        "tenant_id": "acme",
        "job_id": str(uuid.uuid4()),
        "batch_id": None,
        "seq": 1,
        "type": "job.queued",
        "time": time,
        "data": {"label": label},
        "relayed_at": relayed_at if relayed else None,
    }
    with db.session_scope() as session:
        repo.add_events(session, [row])


def labels() -> list[str]:
    with db.session_scope() as session:
        return [str(data["label"]) for data in session.scalars(select(Event.data).order_by(Event.id))]


def cutoff() -> datetime:
    return utcnow() - timedelta(seconds=RETENTION_S)


def test_only_events_past_the_retention_are_deleted() -> None:
    add_event(RETENTION_S + 600, label="old")
    add_event(RETENTION_S + 1, label="just past")
    add_event(RETENTION_S - 60, label="just within")
    add_event(0, label="new")
    with db.session_scope() as session:
        assert repo.delete_events_before(session, cutoff(), limit=100) == 2
    assert labels() == ["just within", "new"]


def test_an_event_not_relayed_yet_is_kept_whatever_its_age() -> None:
    add_event(RETENTION_S * 10, relayed=False, label="waiting for its sinks")
    add_event(RETENTION_S * 10, label="relayed")
    with db.session_scope() as session:
        assert repo.delete_events_before(session, cutoff(), limit=100) == 1
    assert labels() == ["waiting for its sinks"]


def test_retention_counts_from_when_an_event_was_handed_to_its_sinks() -> None:
    # NATS was down for a while: the relay handed the event on long after it was written.
    add_event(RETENTION_S * 2, relayed_age_s=60, label="relayed late")
    add_event(RETENTION_S * 2, label="relayed at once")
    with db.session_scope() as session:
        assert repo.delete_events_before(session, cutoff(), limit=100) == 1
    assert labels() == ["relayed late"]


def test_a_batch_deletes_the_oldest_first_and_no_more_than_its_limit() -> None:
    for n in range(5):
        add_event(RETENTION_S * 2, label=f"old {n}")
    add_event(0, label="new")
    with db.session_scope() as session:
        assert repo.delete_events_before(session, cutoff(), limit=2) == 2
    assert labels() == ["old 2", "old 3", "old 4", "new"]


def test_a_sweep_works_off_a_backlog_in_bounded_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "_EVENT_BATCH", 2)
    monkeypatch.setattr(retention, "_EVENT_BATCHES_PER_SWEEP", 2)
    for n in range(5):
        add_event(RETENTION_S * 2, label=f"old {n}")
    add_event(5, label="new")
    assert retention.sweep_events(settings()) == 4  # two batches of two, then the sweep is done
    assert labels() == ["old 4", "new"]
    assert retention.sweep_events(settings()) == 1
    assert retention.sweep_events(settings()) == 0
    assert labels() == ["new"]


def test_the_job_sweeper_runs_event_retention() -> None:
    add_event(RETENTION_S * 2, label="old")
    add_event(0, label="new")
    sweep_stalled_jobs(settings())
    assert labels() == ["new"]
