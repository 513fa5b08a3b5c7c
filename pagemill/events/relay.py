"""The relay: hands events the outbox holds unrelayed to their sinks, at least once.

One pass takes the oldest unrelayed events (locked to its commit on Postgres, so concurrent passes split
them), and in one transaction:

* makes a delivery for every enabled endpoint of the event's tenant subscribed to its type, and for the
  job's callback URL (job events but page events), skipping any that exists already (the unique
  (target, event) pair: a second pass over the same event adds nothing);
* publishes them to NATS when ``events.nats_url`` is set (pagemill.events.nats_sink; page events only with
  ``events.nats_page_events``);
* marks them relayed, unless NATS failed: then they stay unrelayed and the next pass publishes them again
  (their deliveries, made already, are not made twice);

then, after the commit, sends a ``pagemill.deliver_webhook`` for each new delivery that is the first of its
job to its target in the batch (and for each one of no job): the job's later ones wait for it anyway, and
each attempt hands on to the next in line (pagemill.webhooks.delivery), so their own messages would only be
read and dropped. Woken by ``pagemill.relay_events`` after each transaction that wrote a wanted event, and run
by every sweep, so no event depends on one message.

Wake-ups come one per such transaction, hundreds a second while pages finish; a pass of the process
already running takes what they would, so a wake-up that finds one running asks it for one more pass and
returns (:func:`relay_soon`) instead of holding a delivery thread on the lock.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.db import session_scope
from pagemill.events.types import EventType
from pagemill.models import DeliveryState, Event
from pagemill.models.base import utcnow
from pagemill.models.webhook import CALLBACK_TARGET
from pagemill.settings import Settings, get_settings
from pagemill.webhooks import repository as repo
from pagemill.webhooks.subscriptions import subscribes

log = logging.getLogger(__name__)

BATCH = 500
# Types that never go to a job's callback URL: page events are one per page, asked for by name only.
_NOT_TO_CALLBACKS = frozenset({EventType.JOB_PAGE_COMPLETED.value})
# Passes of one process take turns: on SQLite (no row locks) two would read the same events.
_one_pass_at_a_time = threading.Lock()
# relay_soon's bookkeeping: whether a pass runs, and whether a wake-up came while it did.
_wakeups = threading.Lock()
_running = False
_again = False


def relay_soon(settings: Settings | None = None) -> int:
    """Relay now, or, when a pass of this process is running already, have it make one more pass once done
    (which sees every event committed before this call) and return at once; how many this call relayed."""
    global _running, _again
    with _wakeups:
        if _running:
            _again = True
            return 0
        _running = True
    relayed = 0
    try:
        while True:
            relayed += relay_pending(settings)
            with _wakeups:
                if not _again:
                    _running = False
                    return relayed
                _again = False
    except BaseException:
        with _wakeups:
            _running = False
        raise


def relay_pending(settings: Settings | None = None, *, max_batches: int = 20) -> int:
    """Relay unrelayed events, a batch per transaction, until none is left (or NATS fails, or
    ``max_batches`` were done: the next wake-up goes on); how many were relayed."""
    settings = settings or get_settings()
    relayed = 0
    with _one_pass_at_a_time:
        for _ in range(max_batches):
            with session_scope() as session:
                taken, done = relay_batch(session, settings)
            relayed += done
            if taken < BATCH or done < taken:
                break
    return relayed


def sweep(settings: Settings) -> None:
    """The sweeper's part (every worker, every ``worker.sweep_interval_s``): a relay pass, then a message
    for each webhook delivery that is due with none coming. Failures are logged, never raised."""
    from pagemill.webhooks.delivery import send_due

    try:
        relay_pending(settings)
    except Exception:
        log.warning("event relay pass failed; retried at the next sweep", exc_info=True)
    try:
        send_due(settings)
    except Exception:
        log.warning("sending due webhook deliveries failed; retried at the next sweep", exc_info=True)


def relay_batch(session: Session, settings: Settings) -> tuple[int, int]:
    """One batch in ``session`` (see the module docstring); (events taken, events marked relayed)."""
    events = repo.claim_unrelayed(session, BATCH)
    if not events:
        return 0, 0
    now = utcnow()
    rows = delivery_rows(session, events, now, settings)
    made = set(repo.add_deliveries(session, rows))
    lines: set[tuple[str, str]] = set()
    for row in rows:
        if row["id"] not in made or row["message_due_at"] is None:
            continue
        if row["job_id"] is not None:
            if (row["target"], row["job_id"]) in lines:
                continue  # waits for the job's earlier delivery, whose attempt hands on to it
            lines.add((row["target"], row["job_id"]))
        queue.enqueue_after_commit(session, queue.DELIVER_WEBHOOK, [row["id"]], queue.WEBHOOKS_QUEUE)
    if settings.events.nats_url is not None and not _published(events, settings):
        return len(events), 0
    repo.mark_relayed(session, [event.id for event in events], now)
    return len(events), len(events)


def delivery_rows(
    session: Session, events: Sequence[Event], now: datetime, settings: Settings
) -> list[dict[str, Any]]:
    """The deliveries these events make: one per subscribed enabled endpoint, one per job callback URL."""
    endpoints: dict[str, list[tuple[str, list[str]]]] = {}
    for endpoint_id, tenant_id, types in repo.enabled_endpoints(session, [e.tenant_id for e in events]):
        endpoints.setdefault(tenant_id, []).append((endpoint_id, types))
    callbacks = repo.callback_urls(session, [e.job_id for e in events if e.job_id is not None])
    first_wait = settings.webhooks.retry_schedule_s[0]
    due = now + timedelta(seconds=first_wait)
    rows: list[dict[str, Any]] = []

    def add(event: Event, target: str, endpoint_id: str | None, url: str | None) -> None:
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "target": target,
                "endpoint_id": endpoint_id,
                "url": url,
                "event_pk": event.id,
                "event_id": event.event_id,
                "event_type": event.type,
                "tenant_id": event.tenant_id,
                "job_id": event.job_id,
                "state": DeliveryState.PENDING,
                "attempts": 0,
                "round_attempts": 0,
                "next_attempt_at": due,
                # Its message goes out after the commit (a first wait, if any, is left to the sweeper).
                "message_due_at": now if first_wait == 0 else None,
                "created_at": now,
                "updated_at": now,
            }
        )

    for event in events:
        if event.type == EventType.WEBHOOK_PING:
            continue  # a ping is delivered to the endpoint it tests, by the call that made it
        for endpoint_id, types in endpoints.get(event.tenant_id, []):
            if subscribes(types, event.type):
                add(event, endpoint_id, endpoint_id, None)
        url = callbacks.get(event.job_id) if event.job_id is not None else None
        if url is not None and event.type not in _NOT_TO_CALLBACKS:
            add(event, CALLBACK_TARGET, None, url)
    return rows


def _published(events: Sequence[Event], settings: Settings) -> bool:
    """Publish to NATS the events it takes; False (logged) if that failed."""
    from pagemill.events import nats_sink

    wanted = [
        event
        for event in events
        if event.type != EventType.JOB_PAGE_COMPLETED or settings.events.nats_page_events
    ]
    if not wanted:
        return True
    try:
        nats_sink.publish(wanted, settings)
    except Exception:
        log.warning(
            "publishing %d event(s) to NATS failed; the next relay pass tries again",
            len(wanted),
            exc_info=True,
        )
        return False
    return True
