"""Delivering webhooks on real migrated databases to a real HTTP receiver, in-process: one job's deliveries
in event order, the SSRF guard at every attempt, retries and dead ends, disabling a failing endpoint, the
rotation grace, and the sweeper's resends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_network

import pytest
from sqlalchemy import select

from pagemill import db, queue
from pagemill.events import relay
from pagemill.events.types import EventType
from pagemill.models import Event, WebhookEndpoint
from pagemill.models.base import utcnow
from pagemill.models.webhook import CALLBACK_TARGET
from pagemill.secret_box import seal_secret
from pagemill.settings import get_settings
from pagemill.webhooks import delivery
from pagemill.webhooks import repository as repo
from pagemill.webhooks.signing import new_secret
from tests.integration.webhooks.conftest import (
    add_callback_secret,
    add_endpoint,
    deliveries,
    job_event,
    queued_job,
    set_delivery,
)
from tests.support.webhook_receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """A receiver on 127.0.0.1, opened to the SSRF guard; a schedule of short waits, no jitter."""
    settings = get_settings()
    monkeypatch.setattr(settings.egress, "allow_networks", [ip_network("127.0.0.0/8")])
    monkeypatch.setattr(settings.webhooks, "retry_schedule_s", [0.0, 0.2, 0.2])
    monkeypatch.setattr(settings.webhooks, "retry_jitter", 0.0)
    monkeypatch.setattr(settings.webhooks, "timeout_s", 2.0)
    with WebhookReceiver() as server:
        yield server


def three_deliveries(receiver: WebhookReceiver, path: str) -> tuple[str, list[str]]:
    """An endpoint at ``path`` and the deliveries of a job's first three events to it, in event order."""
    endpoint_id, secret = add_endpoint(receiver.url(path))
    receiver.trust(path, secret)
    job_id = queued_job()
    job_event(job_id, EventType.JOB_STARTED)
    job_event(job_id, EventType.JOB_SUCCEEDED)
    relay.relay_pending()
    return endpoint_id, [d.id for d in deliveries(target=endpoint_id)]


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[object]]]:
    """The delivery messages sent after commits (name, args), kept from the broker (as every message)."""
    sent: list[tuple[str, list[object]]] = []

    def send_task(name: str, args: list[object], *_rest: object) -> None:
        if name == queue.DELIVER_WEBHOOK:
            sent.append((name, args))

    monkeypatch.setattr(queue, "send_task", send_task)
    return sent


def test_a_jobs_deliveries_wait_for_the_earlier_events_attempt(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, published: list[tuple[str, list[object]]]
) -> None:
    monkeypatch.setattr(delivery, "CHAIN_BUDGET_S", 0.0)  # one attempt per call: each hands on by message
    _, (first, second, third) = three_deliveries(receiver, "/ordered")
    assert published == [(queue.DELIVER_WEBHOOK, [first])]  # the relay's: the first in line only
    published.clear()
    delivery.deliver(third)
    delivery.deliver(second)
    assert receiver.received("/ordered") == []  # both wait for job.queued's attempt
    delivery.deliver(first)
    assert published == [(queue.DELIVER_WEBHOOK, [second])]  # handed on to the next in line
    delivery.deliver(third)  # still behind job.started
    delivery.deliver(second)
    delivery.deliver(third)
    got = receiver.received("/ordered")
    assert [r.type for r in got] == ["job.queued", "job.started", "job.succeeded"]
    assert all(r.verified for r in got)
    assert [d.state for d in deliveries()] == ["succeeded"] * 3


def test_after_a_success_the_same_call_delivers_the_jobs_next_events(
    receiver: WebhookReceiver, published: list[tuple[str, list[object]]]
) -> None:
    _, (first, _second, _third) = three_deliveries(receiver, "/chained")
    published.clear()
    delivery.deliver(first)
    got = receiver.received("/chained")
    assert [r.type for r in got] == ["job.queued", "job.started", "job.succeeded"]
    assert [d.state for d in deliveries()] == ["succeeded"] * 3
    assert published == []  # no message for the ones it went on with


def test_a_delivery_made_while_the_one_before_settles_is_not_left_to_the_sweeper(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, published: list[tuple[str, list[object]]]
) -> None:
    """The relay makes the job's next delivery and its message is handled just as the earlier one settles,
    after that one looked for a next in line: one of the two must send it (no redeliver_after_s wait)."""
    endpoint_id, secret = add_endpoint(receiver.url("/race"))
    receiver.trust("/race", secret)
    job_id = queued_job()
    relay.relay_pending()
    (first,) = [d.id for d in deliveries(target=endpoint_id)]
    next_in_line = delivery._next_in_line
    made: list[str] = []

    def look_then_race(*args: object) -> str | None:
        found = next_in_line(*args)  # type: ignore[arg-type]
        if not made:  # only around the first delivery's lookup
            job_event(job_id, EventType.JOB_SUCCEEDED)
            relay.relay_pending()
            made.extend(d.id for d in deliveries(target=endpoint_id) if d.id != first)
            relayed = list(published)
            published.clear()
            for _name, args_ in relayed:
                delivery.deliver(str(args_[0]))  # the relay's message, handled at once (and gone)
        return found

    monkeypatch.setattr(delivery, "_next_in_line", look_then_race)
    published.clear()
    delivery.deliver(first)
    for _name, args_ in list(published):  # messages sent since (by the settle)
        delivery.deliver(str(args_[0]))
    assert [r.type for r in receiver.received("/race")] == ["job.queued", "job.succeeded"]
    assert [d.state for d in deliveries(target=endpoint_id)] == ["succeeded", "succeeded"]


def test_the_relay_sends_a_message_for_the_first_delivery_of_each_job_only(
    receiver: WebhookReceiver, published: list[tuple[str, list[object]]]
) -> None:
    endpoint_id, _secret = add_endpoint(receiver.url("/firsts"))
    jobs = [queued_job(), queued_job()]
    for job_id in jobs:
        job_event(job_id, EventType.JOB_STARTED)
    relay.relay_pending()
    made = deliveries(target=endpoint_id)
    assert len(made) == 4
    first_of_each = [next(d.id for d in made if d.job_id == job_id) for job_id in jobs]
    assert sorted(str(args[0]) for _, args in published) == sorted(first_of_each)


def test_a_failed_delivery_does_not_hold_back_the_next_ones(receiver: WebhookReceiver) -> None:
    receiver.script("/failing-first", Reply(500))
    _, (first, second, _third) = three_deliveries(receiver, "/failing-first")
    delivery.deliver(first)
    delivery.deliver(second)  # and, succeeding, the third
    got = receiver.received("/failing-first")
    assert [r.type for r in got] == ["job.queued", "job.started", "job.succeeded"]
    states = {d.id: d for d in deliveries()}
    assert states[first].state == "failed" and states[first].next_attempt_at is not None
    assert states[first].last_status == 500 and states[second].state == "succeeded"


def test_the_ssrf_guard_is_applied_at_each_attempt(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, (first, *_rest) = three_deliveries(receiver, "/guarded")
    # The operator closed the loopback range after the endpoint was registered.
    monkeypatch.setattr(get_settings().egress, "allow_networks", [])
    delivery.deliver(first)
    assert receiver.received("/guarded") == []
    (row,) = deliveries(id=first)
    assert row.state == "failed" and row.last_status is None
    assert row.last_error is not None and row.last_error.startswith("URL_FORBIDDEN"), row.last_error


def test_a_delivery_is_dead_once_the_schedule_is_used_up(receiver: WebhookReceiver) -> None:
    receiver.script("/down", *[Reply(503) for _ in range(5)])
    _, (first, *_rest) = three_deliveries(receiver, "/down")
    for attempt in range(3):
        set_delivery(first, next_attempt_at=utcnow())  # due now, not after the (short) wait
        delivery.deliver(first)
        (row,) = deliveries(id=first)
        assert row.attempts == attempt + 1
    assert row.state == "dead" and row.next_attempt_at is None
    delivery.deliver(first)
    assert len(receiver.received("/down")) == 3


def test_an_endpoint_failing_for_disable_after_s_is_disabled(receiver: WebhookReceiver) -> None:
    receiver.script("/dying", Reply(500))
    endpoint_id, (first, second, _third) = three_deliveries(receiver, "/dying")
    disable_after = get_settings().webhooks.disable_after_s
    with db.session_scope() as session:
        endpoint = repo.get_endpoint(session, endpoint_id)
        assert endpoint is not None
        endpoint.first_failure_at = utcnow() - timedelta(seconds=disable_after + 1)
    delivery.deliver(first)
    with db.session_scope() as session:
        endpoint = repo.get_endpoint(session, endpoint_id)
        assert endpoint is not None and endpoint.enabled is False and endpoint.disabled_reason == "failing"
        disabled = session.scalars(select(Event).where(Event.type == "webhook.disabled")).all()
        assert [e.data["webhook_id"] for e in disabled] == [endpoint_id]
    assert {d.id: d.state for d in deliveries(target=endpoint_id)} == {
        first: "dead",
        second: "dead",
        _third: "dead",
    }
    delivery.deliver(second)
    assert len(receiver.received("/dying")) == 1


def test_a_success_clears_the_failure_record(receiver: WebhookReceiver) -> None:
    receiver.script("/recovering", Reply(500))
    endpoint_id, (first, second, _third) = three_deliveries(receiver, "/recovering")
    delivery.deliver(first)
    with db.session_scope() as session:
        assert session.get(WebhookEndpoint, endpoint_id).first_failure_at is not None  # type: ignore[union-attr]
    delivery.deliver(second)
    with db.session_scope() as session:
        assert session.get(WebhookEndpoint, endpoint_id).first_failure_at is None  # type: ignore[union-attr]


def test_the_previous_secret_signs_only_during_its_grace(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, published: list[tuple[str, list[object]]]
) -> None:
    monkeypatch.setattr(delivery, "CHAIN_BUDGET_S", 0.0)  # the grace ends between two attempts
    endpoint_id, (first, second, _third) = three_deliveries(receiver, "/rotated")
    old = new_secret()
    with db.session_scope() as session:
        endpoint = repo.get_endpoint(session, endpoint_id)
        assert endpoint is not None
        endpoint.previous_secret_sealed = seal_secret(old, get_settings())
        endpoint.previous_secret_expires_at = utcnow() + timedelta(minutes=5)
    delivery.deliver(first)
    with db.session_scope() as session:
        endpoint = repo.get_endpoint(session, endpoint_id)
        assert endpoint is not None
        endpoint.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    delivery.deliver(second)
    during, after = receiver.received("/rotated")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    receiver.trust("/rotated", old)
    assert all(r.verified for r in (during, after))


def test_a_410_from_a_callback_url_ends_the_delivery(receiver: WebhookReceiver) -> None:
    secret = add_callback_secret()
    receiver.trust("/cb", secret)
    receiver.script("/cb", Reply(410))
    queued_job(callback_url=receiver.url("/cb"))
    relay.relay_pending()
    (row,) = deliveries(target=CALLBACK_TARGET)
    delivery.deliver(row.id)
    (row,) = deliveries(target=CALLBACK_TARGET)
    assert row.state == "dead" and row.last_status == 410
    (got,) = receiver.received("/cb")
    assert got.verified and got.type == "job.queued"


def test_the_sweeper_sends_due_deliveries_with_no_message_coming(receiver: WebhookReceiver) -> None:
    _, (lost, fresh, locked) = three_deliveries(receiver, "/sweep")
    now = utcnow()
    long_ago = now - timedelta(minutes=10)
    set_delivery(lost, message_due_at=long_ago)  # its message never ran (a worker killed, Redis emptied)
    set_delivery(fresh, message_due_at=now)  # its message is on its way
    set_delivery(locked, message_due_at=long_ago, locked_until=now + timedelta(minutes=1))  # under way
    assert delivery.send_due() == 1
    (row,) = deliveries(id=lost)
    assert row.message_due_at is not None and row.message_due_at > long_ago
    assert delivery.send_due() == 0  # sent once, not at every sweep
    # A retry after a long wait has no message: the sweeper sends it once due.
    set_delivery(fresh, state="failed", message_due_at=None, next_attempt_at=now + timedelta(hours=1))
    assert delivery.send_due() == 0
    set_delivery(fresh, next_attempt_at=now - timedelta(seconds=1))
    assert delivery.send_due() == 1
