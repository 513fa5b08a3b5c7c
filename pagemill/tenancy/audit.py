"""The audit log: who created or revoked keys, created, cancelled or purged jobs, created or cancelled
batches, read results, created, changed, deleted or re-keyed webhooks, and replayed dead letters; when;
from where.

Events are written in the same transaction as the action they record: an action that rolls back leaves no
event, and an action that commits always has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pagemill.models import AuditEvent
from pagemill.tenancy import repository as repo
from pagemill.tenancy.principal import Actor

KEY_CREATED = "key.create"
KEY_REVOKED = "key.revoke"
JOB_CREATED = "job.create"
JOB_CANCELLED = "job.cancel"
RESULT_READ = "job.result"
JOB_PURGED = "job.purge"
BATCH_CREATED = "batch.create"
BATCH_CANCELLED = "batch.cancel"
WEBHOOK_CREATED = "webhook.create"
WEBHOOK_UPDATED = "webhook.update"
WEBHOOK_DELETED = "webhook.delete"
WEBHOOK_ROTATED = "webhook.rotate_secret"
CALLBACK_SECRET_RENEWED = "webhook.callback_secret"  # noqa: S105 - an action name, not a secret
DEAD_LETTER_REPLAYED = "dead_letter.replay"
ACTIONS = (
    KEY_CREATED,
    KEY_REVOKED,
    JOB_CREATED,
    JOB_CANCELLED,
    RESULT_READ,
    JOB_PURGED,
    BATCH_CREATED,
    BATCH_CANCELLED,
    WEBHOOK_CREATED,
    WEBHOOK_UPDATED,
    WEBHOOK_DELETED,
    WEBHOOK_ROTATED,
    CALLBACK_SECRET_RENEWED,
    DEAD_LETTER_REPLAYED,
)


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    target: str | None,
    tenant_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an event for ``action`` on ``target`` by ``actor`` (committed with the caller's transaction)."""
    repo.add_audit(
        session,
        AuditEvent(
            tenant_id=tenant_id,
            actor=actor.subject[:160],
            action=action,
            target=target,
            ip=actor.ip[:64] if actor.ip else None,
            user_agent=actor.user_agent[:256] if actor.user_agent else None,
            request_id=actor.request_id,
            details=details or None,
        ),
    )


def list_events(
    session: Session,
    *,
    tenant_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    """Events, newest first, optionally of one tenant or action, since a time."""
    return repo.list_audit(session, tenant_id=tenant_id, action=action, since=since, limit=limit)
