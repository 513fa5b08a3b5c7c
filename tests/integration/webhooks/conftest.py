"""Fixtures of the webhook integration tests: empty tables, and rows made the way the services make them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import delete, select, update

from pagemill import db
from pagemill.events import service as events
from pagemill.events.types import EventType
from pagemill.jobs import repository as jobs_repo
from pagemill.models import (
    DEFAULT_TENANT,
    CallbackSecret,
    Event,
    Job,
    Page,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from pagemill.models.base import utcnow
from pagemill.secret_box import seal_secret
from pagemill.settings import get_settings
from pagemill.webhooks import repository as repo
from pagemill.webhooks.signing import new_secret
from pagemill.webhooks.subscriptions import forget
from tests.support.factories import make_job
from tests.support.services import TEST_SECRETS_KEY

TENANT = DEFAULT_TENANT


@pytest.fixture(autouse=True)
def empty_tables(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty webhook, event and job tables; the routing cache off (every event asks the database); a
    secrets key (distributed mode needs one to seal webhook secrets)."""
    monkeypatch.setattr(get_settings().webhooks, "routing_cache_s", 0)
    monkeypatch.setattr(get_settings().secrets, "key", SecretStr(TEST_SECRETS_KEY))
    with db.session_scope() as session:
        for model in (WebhookAttempt, WebhookDelivery, WebhookEndpoint, CallbackSecret, Event, Page, Job):
            session.execute(delete(model))
    forget(TENANT)
    yield


def add_endpoint(url: str = "http://127.0.0.1:9/hook", **fields: Any) -> tuple[str, str]:
    """An endpoint of TENANT; its id and secret."""
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=fields.pop("tenant_id", TENANT),
        url=url,
        description="",
        event_types=fields.pop("event_types", []),
        enabled=fields.pop("enabled", True),
        secret_sealed=seal_secret(secret, get_settings()),
        created_at=now,
        updated_at=now,
        **fields,
    )
    with db.session_scope() as session:
        repo.add_endpoint(session, endpoint)
    forget(TENANT)
    return endpoint.id, secret


def add_callback_secret() -> str:
    """TENANT's callback secret."""
    secret = new_secret()
    now = utcnow()
    with db.session_scope() as session:
        repo.add_callback_secret(
            session,
            CallbackSecret(
                tenant_id=TENANT,
                secret_sealed=seal_secret(secret, get_settings()),
                created_at=now,
                updated_at=now,
            ),
        )
    return secret


def queued_job(callback_url: str | None = None) -> str:
    """A queued job of TENANT with its job.queued event (as a submission writes it)."""
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        jobs_repo.add_job(session, make_job(job_id, tenant_id=TENANT, callback_url=callback_url))
        session.flush()
        events.job_event(session, job_id, EventType.JOB_QUEUED)
    return job_id


def job_event(job_id: str, type_: EventType) -> None:
    """Another event of the job."""
    with db.session_scope() as session:
        events.job_event(session, job_id, type_)


def deliveries(**where: Any) -> list[WebhookDelivery]:
    """Delivery rows (matching ``where``), oldest event first."""
    with db.session_scope() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.event_pk, WebhookDelivery.target)
        for name, value in where.items():
            query = query.where(getattr(WebhookDelivery, name) == value)
        rows = list(session.scalars(query).all())
        session.expunge_all()
        return rows


def unrelayed() -> list[str]:
    """Types of the events the relay has not handed on."""
    with db.session_scope() as session:
        return list(session.scalars(select(Event.type).where(Event.relayed_at.is_(None)).order_by(Event.id)))


def set_delivery(delivery_id: str, **values: Any) -> None:
    """Change a delivery's columns directly (to stage a state)."""
    with db.session_scope() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))
