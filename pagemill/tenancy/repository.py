"""All SQL for tenants, API keys, the usage ledger and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pagemill.models import ApiKey, AuditEvent, Job, Tenant, UsageCounter


def get_tenant(session: Session, tenant_id: str) -> Tenant | None:
    """A tenant by id, or None."""
    return session.get(Tenant, tenant_id)


def _insert(session: Session) -> Any:
    # ON CONFLICT is dialect-specific in SQLAlchemy; both Postgres and SQLite (3.24+) support it.
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def ensure_tenant(session: Session, tenant_id: str, tier: str) -> None:
    """Create a tenant unless it exists (safe when two requests race to create it)."""
    insert = _insert(session)
    session.execute(insert(Tenant).values(id=tenant_id, tier=tier).on_conflict_do_nothing())


def set_tier(session: Session, tenant_id: str, tier: str) -> None:
    """Move a tenant to another tier."""
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(tier=tier))


def list_tenants(session: Session) -> Sequence[Tenant]:
    """Every tenant, by id."""
    return session.scalars(select(Tenant).order_by(Tenant.id)).all()


def add_key(session: Session, key: ApiKey) -> None:
    """Insert a key."""
    session.add(key)


@dataclass(frozen=True)
class KeyCandidate:
    """What authenticating a key needs of it and its tenant (plain columns: no ORM objects per request)."""

    id: str
    secret_hash: str
    scopes: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    tenant_id: str
    tier: str


# Built once: constructing a select() costs more than running this one on an indexed column.
_KEYS_WITH_PREFIX = (
    select(
        ApiKey.id,
        ApiKey.secret_hash,
        ApiKey.scopes,
        ApiKey.expires_at,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        Tenant.id,
        Tenant.tier,
    )
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)


def keys_with_prefix(session: Session, prefix: str) -> list[KeyCandidate]:
    """Keys whose display prefix is ``prefix``, with their tenants' tiers (almost always one)."""
    return [KeyCandidate(*row) for row in session.execute(_KEYS_WITH_PREFIX, {"prefix": prefix})]


def get_key(session: Session, key_id: str) -> ApiKey | None:
    """A key by id, or None."""
    return session.get(ApiKey, key_id)


def list_keys(session: Session, *, tenant_id: str | None, include_revoked: bool) -> Sequence[ApiKey]:
    """Keys, newest first, of one tenant or of all."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return session.scalars(query).all()


def count_usable_keys(session: Session, now: datetime) -> int:
    """How many keys are neither revoked nor expired."""
    query = (
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
    )
    return int(session.scalar(query) or 0)


def revoke_key(session: Session, key_id: str, now: datetime) -> None:
    """Revoke a key (a no-op if it already is)."""
    session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )


def touch_key(session: Session, key_id: str, now: datetime, resolution: timedelta) -> None:
    """Record a key's use, at most once per ``resolution`` (a write per request would be a hot row)."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - resolution),
        )
        .values(last_used_at=now)
    )


def take_usage(
    session: Session, tenant_id: str, period: str, period_start: str, limit: int | None, amount: int = 1
) -> int | None:
    """Count ``amount`` (one document; or seconds of audio, in the audio periods) in a usage period, unless
    that would pass ``limit``; the new count, or None.

    One statement, so it is atomic: on Postgres the conflicting row is locked and the WHERE re-checked
    against its latest committed version; SQLite serialises writers. The count is held until the
    transaction commits, and is given back if it rolls back.
    """
    if limit is not None and amount > limit:
        return None  # the insert of a first row is not checked against the limit below
    insert = _insert(session)
    statement = insert(UsageCounter).values(
        tenant_id=tenant_id, period=period, period_start=period_start, documents=amount
    )
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "period", "period_start"],
        set_={"documents": UsageCounter.documents + amount},
        where=(UsageCounter.documents + amount <= limit) if limit is not None else None,
    ).returning(UsageCounter.documents)
    row = session.execute(statement).first()
    return None if row is None else int(row[0])


def usage(session: Session, tenant_id: str, period: str, period_start: str) -> int:
    """Documents counted for a tenant in one period."""
    value = session.scalar(
        select(UsageCounter.documents).where(
            UsageCounter.tenant_id == tenant_id,
            UsageCounter.period == period,
            UsageCounter.period_start == period_start,
        )
    )
    return int(value or 0)


def pages_since(session: Session, tenant_id: str, since: datetime) -> int:
    """Pages read for a tenant's jobs created since ``since`` (a cached job read none: it copied them)."""
    value = session.scalar(
        select(func.coalesce(func.sum(Job.pages_done), 0)).where(
            Job.tenant_id == tenant_id, Job.created_at >= since, Job.cached_from.is_(None)
        )
    )
    return int(value or 0)


def cached_since(session: Session, tenant_id: str, since: datetime) -> int:
    """A tenant's jobs created since ``since`` that were answered from the result cache."""
    value = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.created_at >= since, Job.cached_from.is_not(None))
    )
    return int(value or 0)


def add_audit(session: Session, event: AuditEvent) -> None:
    """Append an audit event (committed with the action it records)."""
    session.add(event)


def list_audit(
    session: Session,
    *,
    tenant_id: str | None,
    action: str | None,
    since: datetime | None,
    limit: int,
) -> Sequence[AuditEvent]:
    """Audit events, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return session.scalars(query).all()
