"""Managing webhook endpoints, their secrets and deliveries, and the tenant's callback secret. Never commits.

Secrets are made here (pagemill.webhooks.signing), shown once, and stored sealed (pagemill.secret_box):
without ``secrets.key`` (distributed mode) an endpoint cannot be registered (SECRETS_NOT_CONFIGURED).
Endpoint URLs pass the SSRF guard's API check here (scheme, userinfo, literal addresses, ``localhost``: no
DNS in the API) and its full check, name resolved, at every attempt (pagemill.webhooks.sender).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.db import SessionScope
from pagemill.egress.guard import EgressPolicy, check_submission
from pagemill.errors import Conflict, NotFound, SecretsNotConfigured, ValidationFailed
from pagemill.events import service as events
from pagemill.events.types import EventType
from pagemill.models import CallbackSecret, DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from pagemill.models.base import utcnow
from pagemill.models.webhook import CALLBACK_TARGET
from pagemill.pagination import decode_cursor, encode_cursor
from pagemill.secret_box import seal_secret
from pagemill.settings import Settings
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor
from pagemill.webhooks import repository as repo
from pagemill.webhooks.schemas import WebhookCreate, WebhookUpdate
from pagemill.webhooks.signing import new_secret
from pagemill.webhooks.subscriptions import forget

DISABLED_BY_TENANT = "disabled"
REPLAY_LIMIT = 1000
_NO_KEY = (
    "This server cannot keep webhook secrets: its operator has not set secrets.key (PAGEMILL_SECRETS__KEY)."
)


def _seal(secret: str, settings: Settings) -> str:
    try:
        return seal_secret(secret, settings)
    except SecretsNotConfigured:
        raise SecretsNotConfigured(_NO_KEY) from None


def _canonical(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def check_url(url: str, settings: Settings) -> str:
    """A webhook or callback URL as it will be called, or UrlForbidden (the SSRF guard, without DNS)."""
    return check_submission(url, EgressPolicy.from_settings(settings.egress))


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """A tenant's endpoint; NotFound if there is none (or it is another tenant's)."""
    canonical = _canonical(endpoint_id)
    endpoint = repo.get_endpoint(session, canonical, tenant_id) if canonical else None
    if endpoint is None:
        raise NotFound("No webhook with this id.", webhook_id=endpoint_id)
    return endpoint


def create_endpoint(
    session: Session, settings: Settings, *, tenant_id: str, actor: Actor, body: WebhookCreate
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; it and its secret (shown once). Audited."""
    url = check_url(body.url, settings)
    if repo.count_endpoints(session, tenant_id) >= settings.webhooks.max_endpoints:
        raise Conflict(
            f"The tenant has {settings.webhooks.max_endpoints} webhooks already (webhooks.max_endpoints); "
            "delete one first.",
            max_endpoints=settings.webhooks.max_endpoints,
        )
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        url=url,
        description=body.description,
        event_types=[str(t) for t in body.event_types],
        enabled=body.enabled,
        disabled_reason=None if body.enabled else DISABLED_BY_TENANT,
        secret_sealed=_seal(secret, settings),
        created_at=now,
        updated_at=now,
    )
    repo.add_endpoint(session, endpoint)
    audit.record(
        session, actor, audit.WEBHOOK_CREATED, target=endpoint.id, tenant_id=tenant_id, details={"url": url}
    )
    forget(tenant_id)
    return endpoint, secret


def list_endpoints(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[WebhookEndpoint], str | None]:
    """A page of the tenant's endpoints, newest first, and the next page's cursor."""
    after = decode_cursor(cursor) if cursor else None
    rows = list(repo.list_endpoints(session, tenant_id, limit=limit + 1, after=after))
    return rows[:limit], encode_cursor(rows[limit - 1]) if len(rows) > limit else None


def update_endpoint(
    session: Session,
    settings: Settings,
    *,
    tenant_id: str,
    endpoint_id: str,
    actor: Actor,
    body: WebhookUpdate,
) -> WebhookEndpoint:
    """Change an endpoint's URL, label, types or state (enabling one clears its failure record). Audited."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    given = body.model_fields_set
    changed: dict[str, object] = {}
    if "url" in given and body.url is not None:
        endpoint.url = changed["url"] = check_url(body.url, settings)
    if "description" in given and body.description is not None:
        endpoint.description = body.description
    if "event_types" in given and body.event_types is not None:
        endpoint.event_types = [str(t) for t in body.event_types]
        changed["event_types"] = endpoint.event_types
    if "enabled" in given and body.enabled is not None and body.enabled != endpoint.enabled:
        endpoint.enabled = changed["enabled"] = body.enabled
        endpoint.disabled_reason = None if body.enabled else DISABLED_BY_TENANT
        endpoint.first_failure_at = None
    endpoint.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        audit.WEBHOOK_UPDATED,
        target=endpoint.id,
        tenant_id=tenant_id,
        details=changed or None,
    )
    forget(tenant_id)
    return endpoint


def delete_endpoint(session: Session, *, tenant_id: str, endpoint_id: str, actor: Actor) -> None:
    """Delete an endpoint with its delivery records. Audited."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    url = endpoint.url
    repo.delete_endpoint(session, endpoint)
    audit.record(
        session, actor, audit.WEBHOOK_DELETED, target=endpoint_id, tenant_id=tenant_id, details={"url": url}
    )
    forget(tenant_id)


def rotate_secret(
    session: Session, settings: Settings, *, tenant_id: str, endpoint_id: str, actor: Actor
) -> tuple[WebhookEndpoint, str]:
    """Give an endpoint a new secret (shown once); the old one keeps signing beside it for
    ``webhooks.rotation_grace_s``. Audited."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    secret = new_secret()
    now = utcnow()
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_expires_at = now + timedelta(seconds=settings.webhooks.rotation_grace_s)
    endpoint.secret_sealed = _seal(secret, settings)
    endpoint.updated_at = now
    session.flush()
    audit.record(session, actor, audit.WEBHOOK_ROTATED, target=endpoint.id, tenant_id=tenant_id)
    return endpoint, secret


def ping(session: Session, settings: Settings, *, tenant_id: str, endpoint_id: str) -> WebhookDelivery:
    """Send a webhook.ping event to this endpoint only (whatever its state); its delivery."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    event = events.tenant_event(
        session,
        tenant_id,
        EventType.WEBHOOK_PING,
        {"webhook_id": endpoint.id, "url": endpoint.url},
        relay=False,
        settings=settings,
    )
    now = utcnow()
    (delivery_id,) = repo.add_deliveries(
        session,
        [
            {
                "id": str(uuid.uuid4()),
                "target": endpoint.id,
                "endpoint_id": endpoint.id,
                "url": None,
                "event_pk": event.id,
                "event_id": event.event_id,
                "event_type": event.type,
                "tenant_id": tenant_id,
                "job_id": None,
                "state": DeliveryState.PENDING,
                "attempts": 0,
                "round_attempts": 0,
                "next_attempt_at": now,
                "message_due_at": now,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    queue.enqueue_after_commit(session, queue.DELIVER_WEBHOOK, [delivery_id], queue.WEBHOOKS_QUEUE)
    return _delivery(session, tenant_id, endpoint.id, delivery_id)


def _target(session: Session, tenant_id: str, endpoint_id: str | None) -> str:
    """The delivery target of an endpoint of the tenant (NotFound if it has none such), or of its jobs'
    callback URLs (``endpoint_id`` None)."""
    return CALLBACK_TARGET if endpoint_id is None else get_endpoint(session, tenant_id, endpoint_id).id


def list_deliveries(
    session: Session,
    *,
    tenant_id: str,
    endpoint_id: str | None,
    state: DeliveryState | None,
    job_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], dict[str, list[WebhookAttempt]], str | None]:
    """A page of the deliveries of an endpoint (None: of the tenant's callback URLs), newest first, their
    attempts, and the next page's cursor."""
    target = _target(session, tenant_id, endpoint_id)
    after = decode_cursor(cursor) if cursor else None
    rows = list(
        repo.list_deliveries(
            session,
            tenant_id=tenant_id,
            target=target,
            state=state,
            job_id=_canonical(job_id) or job_id if job_id else None,
            limit=limit + 1,
            after=after,
        )
    )
    page = rows[:limit]
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return page, repo.attempts_of(session, [row.id for row in page]), next_cursor


def get_delivery(
    session: Session, *, tenant_id: str, endpoint_id: str | None, delivery_id: str
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """A delivery of an endpoint (None: of a callback URL) and its attempts; NotFound if there is none."""
    delivery = _delivery(session, tenant_id, _target(session, tenant_id, endpoint_id), delivery_id)
    return delivery, repo.attempts_of(session, [delivery.id])[delivery.id]


def replay(
    session: Session, *, tenant_id: str, endpoint_id: str | None, delivery_id: str
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """Send a delivery again now, with a fresh retry schedule and the same webhook-id (any state); it and
    its attempts so far."""
    delivery = _delivery(session, tenant_id, _target(session, tenant_id, endpoint_id), delivery_id)
    repo.restart_delivery(session, delivery.id, utcnow())
    queue.enqueue_after_commit(session, queue.DELIVER_WEBHOOK, [delivery.id], queue.WEBHOOKS_QUEUE)
    session.refresh(delivery)
    return delivery, repo.attempts_of(session, [delivery.id])[delivery.id]


def replay_failed(session: Session, *, tenant_id: str, endpoint_id: str | None, since: datetime) -> list[str]:
    """Send again (as :func:`replay`) an endpoint's (None: the callback URLs') failed and dead deliveries
    made since ``since``, at most REPLAY_LIMIT per call (oldest first); their ids."""
    target = _target(session, tenant_id, endpoint_id)
    ids = repo.restart_failed_since(
        session, tenant_id=tenant_id, target=target, since=since, now=utcnow(), limit=REPLAY_LIMIT
    )
    for delivery_id in ids:
        queue.enqueue_after_commit(session, queue.DELIVER_WEBHOOK, [delivery_id], queue.WEBHOOKS_QUEUE)
    return ids


def _delivery(session: Session, tenant_id: str, target: str, delivery_id: str) -> WebhookDelivery:
    canonical = _canonical(delivery_id)
    delivery = (
        repo.get_delivery(session, canonical, tenant_id=tenant_id, target=target) if canonical else None
    )
    if delivery is None:
        raise NotFound("No delivery with this id.", delivery_id=delivery_id)
    return delivery


# --------------------------------------------------------------------------------------------------
# Job callback URLs


def get_callback_secret(session: Session, tenant_id: str) -> CallbackSecret:
    """The tenant's callback secret record; NotFound if it has none yet."""
    row = repo.get_callback_secret(session, tenant_id)
    if row is None:
        raise NotFound("The tenant has no callback secret yet: POST /api/v1/callbacks/secret.")
    return row


def renew_callback_secret(
    session: Session, settings: Settings, *, tenant_id: str, actor: Actor
) -> tuple[CallbackSecret, str, bool]:
    """Make the tenant's callback secret, or rotate it (the old one signs beside the new one for
    ``webhooks.rotation_grace_s``); the record, the new secret (shown once) and whether it was made now."""
    secret = new_secret()
    sealed = _seal(secret, settings)
    now = utcnow()
    row = repo.get_callback_secret(session, tenant_id)
    made = row is None
    if row is None:
        row = CallbackSecret(tenant_id=tenant_id, secret_sealed=sealed, created_at=now, updated_at=now)
        repo.add_callback_secret(session, row)
    else:
        row.previous_secret_sealed = row.secret_sealed
        row.previous_secret_expires_at = now + timedelta(seconds=settings.webhooks.rotation_grace_s)
        row.secret_sealed = sealed
        row.updated_at = now
        session.flush()
    audit.record(
        session,
        actor,
        audit.CALLBACK_SECRET_RENEWED,
        target=tenant_id,
        tenant_id=tenant_id,
        details={"made": made},
    )
    return row, secret, made


def checked_callback_url(
    sessions: SessionScope, settings: Settings, tenant_id: str, callback_url: str | None
) -> str | None:
    """A submission's ``callback_url`` as it will be called (None without one), checked before anything is
    stored: the SSRF guard's API check (UrlForbidden), and the tenant must have a callback secret to sign
    with (ValidationFailed otherwise)."""
    if callback_url is None or not callback_url.strip():
        return None
    url = check_url(callback_url, settings)
    with sessions() as session:
        found = repo.get_callback_secret(session, tenant_id) is not None
    if not found:
        raise ValidationFailed(
            "callback_url needs the tenant's callback secret to sign its events: create it first with "
            "POST /api/v1/callbacks/secret.",
            field="callback_url",
        )
    return url
