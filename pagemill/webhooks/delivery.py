"""Delivering one webhook: claim the delivery, make one signed attempt, record it, decide what comes next.

At least once: a delivery is held (``locked_until``) only for the length of one attempt; a worker killed
mid-attempt leaves it due, and the sweeper sends it again (:func:`send_due`) once the hold lapsed, with the
same ``webhook-id``. No connection to the database is held during the HTTP request.

After an attempt:

* 2xx: succeeded; the endpoint is not failing any more;
* 410 Gone from an endpoint: it is disabled at once (a ``webhook.disabled`` event is recorded), and this
  and its other open deliveries end ``dead``; from a callback URL, this delivery ends ``dead``;
* anything else (3xx, 4xx, 5xx, a timeout, a refused connection or address): ``failed``, tried again after
  the next wait of ``webhooks.retry_schedule_s`` (with jitter; not sooner than a 429/503's Retry-After),
  ``dead`` once the schedule is used up; an endpoint whose attempts all failed for
  ``webhooks.disable_after_s`` is disabled.

One job's deliveries to one target go out in event order: a delivery waits while an earlier event of the
same job to the same target is still ``pending``, and each attempt hands on to the next one in line when it
ends. After a success the same call goes on with the next one itself, for up to ``CHAIN_BUDGET_S``: a
message through the broker would wait behind every other message of the queue, so a job of hundreds of
page events would take one queue's length per event. After a failure, or once the budget is spent, the next
one gets its own message (a slow endpoint does not hold a thread, and other jobs get their turn).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.db import autocommit_scope, session_scope
from pagemill.egress.guard import EgressPolicy
from pagemill.errors import SecretsNotConfigured
from pagemill.events import service as events
from pagemill.events.types import EventType, envelope_json
from pagemill.logging import bound as bound_log_context
from pagemill.models import DeliveryState, WebhookAttempt, WebhookEndpoint
from pagemill.models.base import utcnow
from pagemill.observability.job_metrics import count_webhook_attempt
from pagemill.secret_box import open_secret
from pagemill.settings import Settings, get_settings
from pagemill.webhooks import repository as repo
from pagemill.webhooks import retry, sender
from pagemill.webhooks.signing import webhook_headers
from pagemill.webhooks.subscriptions import forget

log = logging.getLogger(__name__)

GONE = 410
DISABLED_GONE = "gone"
DISABLED_FAILING = "failing"
# A retry due within this many seconds is sent as a delayed message; a later one is left to the sweeper (a
# message held by a worker for hours would outlive Redis's visibility timeout and be delivered twice).
DELAYED_MESSAGE_MAX_S = 30.0
_SEND_DUE_BATCH = 500
# How long one call goes on delivering a job's following events itself before handing on by message.
CHAIN_BUDGET_S = 2.0


@dataclass(frozen=True)
class _Attempt:
    """What an attempt needs once the claim's transaction has ended."""

    delivery_id: str
    lock_id: str
    number: int
    round_attempts: int
    target: str
    job_id: str | None
    event_pk: int
    endpoint_id: str | None
    tenant_id: str
    url: str
    body: bytes
    msg_id: str
    signing_secrets: list[str]
    # Whether the endpoint was failing: only then does a success have a failure record to clear.
    endpoint_failing: bool = False


def deliver(delivery_id: str, settings: Settings | None = None) -> None:
    """Make one attempt of the delivery if it is due and free, otherwise nothing (a duplicate message, a
    delivery another worker holds, or one waiting for an earlier event of its job); after a success, go on
    with the job's next deliveries to the same target for up to ``CHAIN_BUDGET_S``."""
    settings = settings or get_settings()
    budget_ends = time.monotonic() + CHAIN_BUDGET_S
    following: str | None = delivery_id
    while following is not None:
        attempt = _claim(following, settings)
        if attempt is None:
            return
        with bound_log_context(
            job_id=attempt.job_id, tenant=attempt.tenant_id, delivery_id=attempt.delivery_id
        ):
            started, outcome = _attempt(attempt, settings)
            go_on = outcome.succeeded and time.monotonic() < budget_ends
            following = _record(attempt, outcome, started, settings, go_on=go_on)


def _attempt(attempt: _Attempt, settings: Settings) -> tuple[datetime, sender.Outcome]:
    """One signed POST (or the failure of a secret that cannot be opened); when it started, what it got."""
    started = utcnow()
    if attempt.signing_secrets:
        headers = webhook_headers(attempt.signing_secrets, attempt.msg_id, started, attempt.body)
        outcome = sender.post(
            attempt.url,
            attempt.body,
            headers,
            policy=EgressPolicy.from_settings(settings.egress),
            timeout_s=settings.webhooks.timeout_s,
            dns_timeout_s=settings.egress.dns_timeout_s,
        )
    else:
        outcome = sender.Outcome(
            status=None,
            latency_ms=0.0,
            error=f"{SecretsNotConfigured.code}: the signing secret cannot be decrypted on this worker "
            "(secrets.key differs from the API's)",
        )
    return started, outcome


def _claim(delivery_id: str, settings: Settings) -> _Attempt | None:
    now = utcnow()
    lock_id = secrets.token_hex(8)
    # Long enough for one attempt: connect, send, the answer's first KiB, the name lookup.
    hold = 3 * settings.webhooks.timeout_s + settings.egress.dns_timeout_s + 5
    with session_scope() as session:
        delivery = repo.claim_delivery(session, delivery_id, lock_id, now, now + timedelta(seconds=hold))
        if delivery is None:
            return None
        event = repo.get_event(session, delivery.event_pk)
        endpoint = repo.get_endpoint(session, delivery.endpoint_id) if delivery.endpoint_id else None
        url, sealed = _target(session, delivery, endpoint)
        if event is None or url is None or sealed is None:
            _end_unsendable(session, delivery, lock_id, now)
            return None
        try:
            signing_secrets = [secret for secret in (open_secret(s, settings) for s in sealed) if secret]
        except SecretsNotConfigured:
            log.error(
                "webhook delivery %s: its secret cannot be decrypted with this worker's keys", delivery_id
            )
            signing_secrets = []
        return _Attempt(
            delivery_id=delivery.id,
            lock_id=lock_id,
            number=delivery.attempts,
            round_attempts=delivery.round_attempts,
            target=delivery.target,
            job_id=delivery.job_id,
            event_pk=delivery.event_pk,
            endpoint_id=delivery.endpoint_id,
            tenant_id=delivery.tenant_id,
            url=url,
            body=envelope_json(event),
            msg_id=event.event_id,
            signing_secrets=signing_secrets,
            endpoint_failing=endpoint is not None and endpoint.first_failure_at is not None,
        )


def _target(
    session: Session, delivery: repo.ClaimedDelivery, endpoint: WebhookEndpoint | None
) -> tuple[str | None, list[str] | None]:
    """Where to send and the sealed secrets that sign (current first, then the previous one in its grace);
    (None, None) when there is nowhere to send: an endpoint disabled or gone, no callback secret."""
    now = utcnow()
    if delivery.endpoint_id is not None:
        if endpoint is None:
            return None, None
        # A ping tests the endpoint whatever its state (it may be disabled, its owner checking it is back).
        if not endpoint.enabled and delivery.event_type != EventType.WEBHOOK_PING:
            return None, None
        return endpoint.url, _in_force(
            endpoint.secret_sealed, endpoint.previous_secret_sealed, endpoint.previous_secret_expires_at, now
        )
    secret = repo.get_callback_secret(session, delivery.tenant_id)
    if secret is None or delivery.url is None:
        return None, None
    return delivery.url, _in_force(
        secret.secret_sealed, secret.previous_secret_sealed, secret.previous_secret_expires_at, now
    )


def _in_force(current: str, previous: str | None, expires_at: datetime | None, now: datetime) -> list[str]:
    """The sealed secrets that sign now: the current one, and the previous one until its grace ends."""
    if previous is not None and expires_at is not None and expires_at > now:
        return [current, previous]
    return [current]


def _end_unsendable(session: Session, delivery: repo.ClaimedDelivery, lock_id: str, now: datetime) -> None:
    reason = "endpoint disabled" if delivery.endpoint_id else "no callback secret for the tenant"
    ended = repo.finish_attempt(
        session,
        delivery.id,
        lock_id,
        {
            "state": DeliveryState.DEAD,
            "next_attempt_at": None,
            "attempts": delivery.attempts - 1,
            "round_attempts": delivery.round_attempts - 1,
            "last_error": reason,
            "updated_at": now,
        },
    )
    if ended:
        count_webhook_attempt(session, DeliveryState.DEAD)
    _send_next_in_line(session, delivery.target, delivery.job_id, delivery.event_pk)


def _record(
    attempt: _Attempt, outcome: sender.Outcome, started: datetime, settings: Settings, *, go_on: bool
) -> str | None:
    """Record the attempt and settle the delivery; the job's next delivery to the same target when the
    caller goes on with it (``go_on``), otherwise None (a message hands it on after the commit)."""
    now = utcnow()
    with session_scope() as session:
        repo.add_attempt(
            session,
            WebhookAttempt(
                delivery_id=attempt.delivery_id,
                number=attempt.number,
                started_at=started,
                status_code=outcome.status,
                latency_ms=round(outcome.latency_ms, 3),
                response=outcome.response,
                error=outcome.error,
            ),
        )
        values: dict[str, object] = {
            "last_status": outcome.status,
            "last_error": outcome.error,
            "updated_at": now,
            "next_attempt_at": None,
        }
        retry_in: float | None = None
        if outcome.succeeded:
            values["state"] = DeliveryState.SUCCEEDED
            if attempt.endpoint_id is not None and attempt.endpoint_failing:
                repo.note_success(session, attempt.endpoint_id)
        elif outcome.status == GONE:
            values["state"] = DeliveryState.DEAD
            if attempt.endpoint_id is not None:
                disable(session, attempt.endpoint_id, attempt.tenant_id, DISABLED_GONE, now, settings)
        else:
            retry_in = _failed(session, attempt, outcome, now, settings, values)
        if not repo.finish_attempt(session, attempt.delivery_id, attempt.lock_id, values):
            # The hold lapsed and another worker took the delivery: its outcome stands; this attempt is only
            # recorded.
            log.warning(
                "webhook delivery %s: attempt %d ended after its hold", attempt.delivery_id, attempt.number
            )
            return None
        count_webhook_attempt(session, str(values["state"]))
        if retry_in is not None and retry_in <= DELAYED_MESSAGE_MAX_S:
            queue.enqueue_after_commit(
                session,
                queue.DELIVER_WEBHOOK,
                [attempt.delivery_id],
                queue.WEBHOOKS_QUEUE,
                countdown=retry_in,
            )
    # Looked up only after the commit: a delivery the relay made meanwhile is either seen here or was
    # committed after this one settled, and then its own message finds the line free. (Looked up before,
    # both could miss it, leaving it to the sweeper's redeliver_after_s.)
    with autocommit_scope() as session:
        following = _next_in_line(session, attempt.target, attempt.job_id, attempt.event_pk)
    if following is not None and not go_on:
        queue.send_task(queue.DELIVER_WEBHOOK, [following], queue.WEBHOOKS_QUEUE)
        return None
    return following


def _failed(
    session: Session,
    attempt: _Attempt,
    outcome: sender.Outcome,
    now: datetime,
    settings: Settings,
    values: dict[str, object],
) -> float | None:
    """Settle a failed attempt's next step in ``values``; seconds until the retry, or None (dead)."""
    hooks = settings.webhooks
    retry_after = None
    if outcome.status in retry.RETRY_AFTER_STATUSES:
        retry_after = retry.parse_retry_after(outcome.retry_after, now)
    wait = retry.next_wait(
        attempt.round_attempts,
        hooks.retry_schedule_s,
        jitter=hooks.retry_jitter,
        retry_after_s=retry_after,
        retry_after_max_s=hooks.retry_after_max_s,
    )
    if attempt.endpoint_id is not None:
        failing_since = repo.note_failure(session, attempt.endpoint_id, now)
        if failing_since is not None and (now - failing_since).total_seconds() >= hooks.disable_after_s:
            disable(session, attempt.endpoint_id, attempt.tenant_id, DISABLED_FAILING, now, settings)
            wait = None
    if wait is None:
        values["state"] = DeliveryState.DEAD
        return None
    due = now + timedelta(seconds=wait)
    values["state"] = DeliveryState.FAILED
    values["next_attempt_at"] = due
    # A short wait is a delayed message; a long one is sent by the sweeper once due (no message now).
    values["message_due_at"] = due if wait <= DELAYED_MESSAGE_MAX_S else None
    return wait


def disable(
    session: Session, endpoint_id: str, tenant_id: str, reason: str, now: datetime, settings: Settings
) -> bool:
    """Disable an endpoint (410, or failing too long): its open deliveries end dead and a webhook.disabled
    event is recorded for the tenant, once; False if it was disabled already."""
    if not repo.disable_endpoint(session, endpoint_id, reason, now):
        return False
    endpoint = repo.get_endpoint(session, endpoint_id)
    repo.end_open_deliveries(session, endpoint_id, f"endpoint disabled ({reason})", now)
    events.tenant_event(
        session,
        tenant_id,
        EventType.WEBHOOK_DISABLED,
        {"webhook_id": endpoint_id, "url": endpoint.url if endpoint else None, "reason": reason},
        settings=settings,
    )
    forget(tenant_id)
    log.warning("webhook endpoint %s of tenant %s disabled: %s", endpoint_id, tenant_id, reason)
    return True


def _next_in_line(session: Session, target: str, job_id: str | None, event_pk: int) -> str | None:
    """The delivery of the job's next event to the same target, which waited for this one, or None."""
    return None if job_id is None else repo.next_in_line(session, target, job_id, event_pk)


def _send_next_in_line(session: Session, target: str, job_id: str | None, event_pk: int) -> None:
    """Send the delivery of the job's next event to the same target (after the commit), if there is one."""
    following = _next_in_line(session, target, job_id, event_pk)
    if following is not None:
        queue.enqueue_after_commit(session, queue.DELIVER_WEBHOOK, [following], queue.WEBHOOKS_QUEUE)


def send_due(settings: Settings | None = None) -> int:
    """Send a message for each delivery that is due but has none coming: a long retry wait ended, or its
    message was lost (a Redis restart, a worker killed mid-attempt: sent again once the hold lapsed and
    ``webhooks.redeliver_after_s`` passed). Run by the sweeper; how many it sent."""
    settings = settings or get_settings()
    now = utcnow()
    lost_before = now - timedelta(seconds=settings.webhooks.redeliver_after_s)
    with session_scope() as session:
        ids = repo.take_due(session, now, lost_before, _SEND_DUE_BATCH)
        for delivery_id in ids:
            queue.enqueue_after_commit(session, queue.DELIVER_WEBHOOK, [delivery_id], queue.WEBHOOKS_QUEUE)
    if ids:
        log.info("sent %d due webhook deliveries", len(ids))
    return len(ids)
