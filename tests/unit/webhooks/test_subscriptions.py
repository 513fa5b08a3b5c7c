"""Which event types an endpoint's subscription takes."""

from __future__ import annotations

from pagemill.events.types import EventType
from pagemill.webhooks.subscriptions import SUBSCRIBABLE, subscribes


def test_no_types_named_takes_everything_but_page_events_and_pings() -> None:
    taken = {t.value for t in EventType if subscribes([], t.value)}
    assert taken == {t.value for t in EventType} - {"job.page_completed", "webhook.ping"}


def test_named_types_take_only_those() -> None:
    assert subscribes(["job.page_completed"], "job.page_completed")
    assert not subscribes(["job.page_completed"], "job.succeeded")
    assert subscribes(["job.failed", "job.succeeded"], "job.failed")
    assert not subscribes(["job.failed"], "webhook.ping")


def test_every_type_but_the_ping_can_be_named() -> None:
    assert "webhook.ping" not in SUBSCRIBABLE
    assert set(SUBSCRIBABLE) == {t.value for t in EventType} - {"webhook.ping"}
