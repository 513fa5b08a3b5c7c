"""The relay on real migrated databases: which events go beyond the outbox, one delivery per subscribed
endpoint and callback URL, never two for the same event and target, NATS failures leave events unrelayed,
and deliveries go with their events when retention deletes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from pagemill import db
from pagemill.events import relay, routing
from pagemill.events import repository as events_repo
from pagemill.events.types import EventType
from pagemill.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from pagemill.models.base import utcnow
from pagemill.models.webhook import CALLBACK_TARGET
from pagemill.settings import get_settings
from pagemill.webhooks import subscriptions
from tests.integration.webhooks.conftest import (
    TENANT,
    add_callback_secret,
    add_endpoint,
    deliveries,
    job_event,
    queued_job,
    unrelayed,
)
from tests.support.services import free_port

pytestmark = pytest.mark.integration


def test_events_no_sink_wants_are_written_relayed() -> None:
    queued_job()
    add_endpoint(enabled=False)  # a disabled endpoint wants nothing
    queued_job()
    add_endpoint(event_types=["job.failed"])
    queued_job()
    assert unrelayed() == []


def test_the_relay_makes_one_delivery_per_subscribed_endpoint_and_callback() -> None:
    everything, _ = add_endpoint()
    failures, _ = add_endpoint(event_types=["job.failed"])
    pages, _ = add_endpoint(event_types=["job.page_completed"])
    add_endpoint(enabled=False)
    add_callback_secret()
    job_id = queued_job(callback_url="http://127.0.0.1:9/cb")
    job_event(job_id, EventType.JOB_STARTED)
    job_event(job_id, EventType.JOB_FAILED)
    assert unrelayed() == ["job.queued", "job.started", "job.failed"]

    assert relay.relay_pending() == 3
    assert unrelayed() == []
    got = {(d.event_type, d.target) for d in deliveries()}
    expected = {(t, everything) for t in ("job.queued", "job.started", "job.failed")}
    expected |= {(t, CALLBACK_TARGET) for t in ("job.queued", "job.started", "job.failed")}
    expected |= {("job.failed", failures)}
    assert got == expected
    assert pages not in {d.target for d in deliveries()}
    callback = deliveries(target=CALLBACK_TARGET)
    assert all(d.url == "http://127.0.0.1:9/cb" and d.endpoint_id is None for d in callback)
    assert all(d.state == "pending" and d.job_id == job_id and d.attempts == 0 for d in deliveries())

    # A second pass over the same events (a crash before the relayed mark, NATS down) adds nothing.
    with db.session_scope() as session:
        session.execute(update(Event).values(relayed_at=None))
    assert relay.relay_pending() == 3
    assert len(deliveries()) == len(expected)


def test_page_events_are_written_only_for_a_tenant_that_subscribes_to_them() -> None:
    job_id = queued_job()
    settings = get_settings()
    with db.session_scope() as session:
        assert not routing.wants_page_events(session, settings, job_id)
    add_endpoint()  # all types but page events
    with db.session_scope() as session:
        assert not routing.wants_page_events(session, settings, job_id)
    add_endpoint(event_types=["job.page_completed"])
    with db.session_scope() as session:
        assert routing.wants_page_events(session, settings, job_id)


def test_subscriptions_are_remembered_for_routing_cache_s_and_forgotten_on_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings().webhooks, "routing_cache_s", 60)
    with db.session_scope() as session:
        assert not subscriptions.tenant_subscribes(session, TENANT, "job.succeeded", 60)
    endpoint_id, _ = add_endpoint()  # add_endpoint forgets, as the service does
    with db.session_scope() as session:
        assert subscriptions.tenant_subscribes(session, TENANT, "job.succeeded", 60)
    # Changed behind this process's back: the cache answers until it expires or is forgotten.
    with db.session_scope() as session:
        disable = update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(enabled=False)
        session.execute(disable)
    with db.session_scope() as session:
        assert subscriptions.tenant_subscribes(session, TENANT, "job.succeeded", 60)
    subscriptions.forget(TENANT)
    with db.session_scope() as session:
        assert not subscriptions.tenant_subscribes(session, TENANT, "job.succeeded", 60)


def test_a_nats_failure_leaves_the_events_for_the_next_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint_id, _ = add_endpoint()
    # Nothing listens there: a real connection refused.
    monkeypatch.setattr(get_settings().events, "nats_url", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setattr(get_settings().events, "nats_timeout_s", 1.0)
    job_id = queued_job()
    job_event(job_id, EventType.JOB_STARTED)
    assert relay.relay_pending() == 0
    assert unrelayed() == ["job.queued", "job.started"]
    # The webhooks do not wait for NATS: their deliveries are made, once.
    assert [d.event_type for d in deliveries(target=endpoint_id)] == ["job.queued", "job.started"]
    assert relay.relay_pending() == 0
    assert len(deliveries()) == 2
    monkeypatch.setattr(get_settings().events, "nats_url", None)
    assert relay.relay_pending() == 2
    assert unrelayed() == [] and len(deliveries()) == 2


def test_retention_deletes_deliveries_and_attempts_with_their_event() -> None:
    add_endpoint()
    queued_job()
    relay.relay_pending()
    (delivery,) = deliveries()
    with db.session_scope() as session:
        session.add(WebhookAttempt(delivery_id=delivery.id, number=1, started_at=utcnow(), status_code=200))
    with db.session_scope() as session:
        deleted = events_repo.delete_events_before(session, utcnow() + timedelta(seconds=1), limit=10)
    assert deleted == 1
    with db.session_scope() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []
        assert session.scalars(select(WebhookAttempt)).all() == []
