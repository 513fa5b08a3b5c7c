"""Event tasks on the webhooks queue: parse ids, call one function. Attempt failures are recorded by the
delivery itself and never raised; a database outage retries the task (and the sweeper covers a lost one)."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from pagemill import queue
from pagemill.errors import TransientError
from pagemill.events import relay
from pagemill.queue import get_celery
from pagemill.webhooks import delivery

app = get_celery()

_RETRY = {
    "autoretry_for": (TransientError, OperationalError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@app.task(name=queue.RELAY_EVENTS, **_RETRY)
def relay_events() -> None:
    """Hand unrelayed events to their sinks: webhook deliveries (sent on) and NATS."""
    relay.relay_soon()


@app.task(name=queue.DELIVER_WEBHOOK, **_RETRY)
def deliver_webhook(delivery_id: str) -> None:
    """One attempt of a webhook delivery, if it is due."""
    delivery.deliver(delivery_id)
