"""Managing endpoints and the callback secret on real migrated databases: secrets shown once and stored
sealed, the endpoint cap, enabling clears the failure record, rotations keep the old secret for the grace,
callback URLs need the tenant's secret, and every change is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from pagemill import db
from pagemill.errors import Conflict, NotFound, UrlForbidden, ValidationFailed
from pagemill.models import AuditEvent, WebhookEndpoint
from pagemill.models.base import utcnow
from pagemill.secret_box import open_secret
from pagemill.settings import get_settings
from pagemill.tenancy.principal import Actor
from pagemill.webhooks import service
from pagemill.webhooks.schemas import WebhookCreate, WebhookUpdate
from tests.integration.webhooks.conftest import TENANT

pytestmark = pytest.mark.integration

ACTOR = Actor(subject="test", tenant_id=TENANT)


def create(url: str = "https://hooks.example.com/a", **fields: object) -> tuple[str, str]:
    with db.session_scope() as session:
        endpoint, secret = service.create_endpoint(
            session,
            get_settings(),
            tenant_id=TENANT,
            actor=ACTOR,
            body=WebhookCreate.model_validate({"url": url, **fields}),
        )
        return endpoint.id, secret


def audit_actions() -> list[str]:
    with db.session_scope() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_the_secret_is_returned_once_and_stored_sealed() -> None:
    endpoint_id, secret = create(event_types=["job.succeeded", "job.succeeded"])
    with db.session_scope() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None and secret not in row.secret_sealed
        assert open_secret(row.secret_sealed, get_settings()) == secret
        assert row.event_types == ["job.succeeded"]
    assert audit_actions()[-1] == "webhook.create"


def test_a_tenant_has_at_most_max_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings().webhooks, "max_endpoints", 2)
    create()
    create()
    with pytest.raises(Conflict):
        create()


def test_an_address_the_guard_refuses_is_not_registered() -> None:
    with pytest.raises(UrlForbidden):
        create("http://169.254.169.254/latest")
    with pytest.raises(UrlForbidden):
        create("http://127.0.0.1:9/hook")  # loopback is not opened here (egress.allow_networks empty)


def test_enabling_again_clears_the_failure_record_and_rotation_keeps_the_old_secret() -> None:
    endpoint_id, secret = create()
    with db.session_scope() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.enabled, row.disabled_reason, row.first_failure_at = False, "gone", utcnow()
    with db.session_scope() as session:
        updated = service.update_endpoint(
            session,
            get_settings(),
            tenant_id=TENANT,
            endpoint_id=endpoint_id.upper(),  # ids are read in any case
            actor=ACTOR,
            body=WebhookUpdate(enabled=True),
        )
        assert updated.enabled and updated.disabled_reason is None and updated.first_failure_at is None
    with db.session_scope() as session:
        rotated, new = service.rotate_secret(
            session, get_settings(), tenant_id=TENANT, endpoint_id=endpoint_id, actor=ACTOR
        )
        assert new != secret
        assert open_secret(rotated.previous_secret_sealed, get_settings()) == secret
        grace = timedelta(seconds=get_settings().webhooks.rotation_grace_s)
        assert rotated.previous_secret_expires_at is not None
        assert abs(rotated.previous_secret_expires_at - (utcnow() + grace)) < timedelta(seconds=30)
    with db.session_scope() as session:
        service.delete_endpoint(session, tenant_id=TENANT, endpoint_id=endpoint_id, actor=ACTOR)
    with db.session_scope() as session, pytest.raises(NotFound):
        service.get_endpoint(session, TENANT, endpoint_id)
    assert audit_actions()[-3:] == ["webhook.update", "webhook.rotate_secret", "webhook.delete"]


def test_a_callback_url_needs_the_tenants_callback_secret() -> None:
    settings = get_settings()
    with pytest.raises(ValidationFailed):
        service.checked_callback_url(db.session_scope, settings, TENANT, "https://cb.example.com/x")
    assert service.checked_callback_url(db.session_scope, settings, TENANT, None) is None
    with db.session_scope() as session:
        row, first, made = service.renew_callback_secret(session, settings, tenant_id=TENANT, actor=ACTOR)
        assert made and row.previous_secret_sealed is None
    with db.session_scope() as session:
        row, second, made = service.renew_callback_secret(session, settings, tenant_id=TENANT, actor=ACTOR)
        assert not made and second != first
        assert open_secret(row.previous_secret_sealed, settings) == first
        assert open_secret(row.secret_sealed, settings) == second
    url = "https://cb.example.com/x#frag"
    assert service.checked_callback_url(db.session_scope, settings, TENANT, url) == "https://cb.example.com/x"
    with pytest.raises(UrlForbidden):
        service.checked_callback_url(db.session_scope, settings, TENANT, "http://10.0.0.1/cb")
    assert audit_actions()[-2:] == ["webhook.callback_secret", "webhook.callback_secret"]
