"""API shapes for keys, usage and the audit log."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field

from pagemill.models import ApiKey, AuditEvent
from pagemill.settings import TierName
from pagemill.tenancy.usage import PeriodUsage

_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T")


def _iso_only(value: object) -> object:
    # Pydantic also reads numbers as Unix times; the schema (and this API) promise ISO 8601 only.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("expected an ISO 8601 date-time with a zone, e.g. 2026-01-31T00:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    # Stored and compared in UTC: a time whose offset takes it past year 1 or 9999 cannot be, and would
    # otherwise overflow where it is converted (an error 500 instead of 422).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date-time is out of range once converted to UTC") from None


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_in_utc)]
"""A time with a zone, written as ISO 8601 (the schema's date-time), never a bare Unix number; in UTC."""


class KeyCreate(BaseModel):
    """A request for a new API key."""

    tenant: str = Field(description="Tenant id (a lower-case slug); created if new.", max_length=64)
    tier: TierName | None = Field(
        default=None,
        description="The tenant's tier: sets it for a new tenant (default standard), moves an existing one.",
    )
    name: str = Field(default="", max_length=128, description="A label, e.g. 'ci' or 'billing-service'.")
    scopes: list[str] = Field(default_factory=list, description="'admin' opens the admin endpoints.")
    expires_at: IsoDateTime | None = Field(
        default=None, description="When the key stops working (with a zone, e.g. 2027-01-01T00:00:00Z)."
    )


class KeyOut(BaseModel):
    """An API key as listed: never its secret."""

    id: str
    tenant: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")

    @classmethod
    def from_key(cls, key: ApiKey) -> KeyOut:
        """Map a row."""
        return cls(
            id=key.id,
            tenant=key.tenant_id,
            prefix=key.prefix,
            name=key.name,
            scopes=list(key.scopes or []),
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class NewKeyOut(KeyOut):
    """A new key with its secret: shown this once, never again."""

    secret: str = Field(description="The key. Store it now: Pagemill keeps only its SHA-256.")


class KeyList(BaseModel):
    """Keys, newest first."""

    items: list[KeyOut]


class PeriodUsageOut(BaseModel):
    """Documents used in a quota period."""

    used: int
    limit: int | None = Field(description="None: unlimited.")
    remaining: int | None
    resets_at: datetime

    @classmethod
    def from_usage(cls, usage: PeriodUsage) -> PeriodUsageOut:
        """Map a period's usage."""
        remaining = None if usage.limit is None else max(0, usage.limit - usage.used)
        return cls(used=usage.used, limit=usage.limit, remaining=remaining, resets_at=usage.resets_at)


class TierLimitsOut(BaseModel):
    """What the tenant's tier allows."""

    rate_limit: str
    documents_per_day: int | None
    documents_per_month: int | None
    max_file_bytes: int
    max_pages: int
    priority: int
    max_batch_items: int
    originals_retention_s: int | None = Field(description="None: kept until purged.")
    results_retention_s: int | None = Field(description="None: kept until purged.")


class UsageOut(BaseModel):
    """A tenant's usage and limits."""

    tenant: str
    tier: str
    limits: TierLimitsOut
    day: PeriodUsageOut
    month: PeriodUsageOut
    pages_this_month: int = Field(
        description="Pages read for jobs created this UTC month (not those copied by the result cache)."
    )
    cached_this_month: int = Field(
        default=0,
        description="Documents this UTC month answered from the result cache (they count in the quota too).",
    )


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    at: datetime
    tenant: str | None
    actor: str
    action: str
    target: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any] | None

    @classmethod
    def from_event(cls, event: AuditEvent) -> AuditEventOut:
        """Map a row."""
        return cls(
            id=event.id,
            at=event.at,
            tenant=event.tenant_id,
            actor=event.actor,
            action=event.action,
            target=event.target,
            ip=event.ip,
            user_agent=event.user_agent,
            request_id=event.request_id,
            details=event.details,
        )


class AuditList(BaseModel):
    """Audit events, newest first."""

    items: list[AuditEventOut]
