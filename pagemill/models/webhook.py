"""Webhooks: tenants' endpoints, each event's deliveries to them (and to jobs' callback URLs), and every
attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pagemill.models.base import Base, UtcDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY (its rowid); Postgres gets a 64-bit identity.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

CALLBACK_TARGET = "callback"
"""The ``target`` of a delivery to a job's callback URL (an endpoint's deliveries have its id there)."""


class DeliveryState(StrEnum):
    """pending (an attempt is due or under way) → succeeded | failed (an attempt failed, another is
    scheduled) → ... → dead (no attempt left, or the endpoint was disabled). A replay makes it pending."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class WebhookEndpoint(Base):
    """A URL of a tenant that receives the tenant's events, signed with the endpoint's secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(256), default="")
    # Event types (job.succeeded ...); empty: every type but job.page_completed, which is named explicitly.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why it was disabled: gone (a 410), failing (webhooks.disable_after_s of failures) or by the tenant.
    disabled_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # `whsec_...`, sealed (pagemill.secret_box) like document passwords; never stored in plain text.
    secret_sealed: Mapped[str] = mapped_column(Text)
    # The secret before the last rotation: it signs beside the new one until it expires.
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The first failed attempt since the last success: failing for webhooks.disable_after_s disables it.
    first_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class CallbackSecret(Base):
    """A tenant's secret for the callback URLs of its jobs (one per tenant), sealed, with rotation grace."""

    __tablename__ = "webhook_callback_secrets"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event to one target (an endpoint, or a job's callback URL), however many attempts it takes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The relay may pass over an event twice (a crash between insert and commit, NATS down): the second
        # pass finds the delivery there and adds none.
        UniqueConstraint("target", "event_id", name="uq_webhook_deliveries_target_event_id"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_tenant_created", "tenant_id", "created_at"),
        # The sweeper's question: which deliveries are due (and their message lost or not yet sent)?
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
        # One job's deliveries to one target go out in event order: is an earlier one still pending?
        Index("ix_webhook_deliveries_target_job", "target", "job_id", "event_pk"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The endpoint's id, or CALLBACK_TARGET.
    target: Mapped[str] = mapped_column(String(36))
    endpoint_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), default=None
    )
    # A callback delivery's URL (the job's callback_url); null for an endpoint's (its URL may change).
    url: Mapped[str | None] = mapped_column(Text, default=None)
    # The event row: its deliveries are deleted with it (events.retention_s).
    event_pk: Mapped[int] = mapped_column(_BIG_ID, ForeignKey("events.id", ondelete="CASCADE"), index=True)
    # The CloudEvents id: the webhook-id of every attempt.
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    # Attempts in all, and since the delivery was (re)started: the retry schedule counts the latter.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # When the last message sent for it is due to run: a delivery still due well after that was lost.
    message_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # The attempt under way: a worker holds the delivery until locked_until; its result is written only
    # if lock_id is still its own (a worker that outlived its lock cannot overwrite a newer attempt's).
    lock_id: Mapped[str | None] = mapped_column(String(32), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, as the receiver answered it (or why there was no answer)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_number", "delivery_id", "number"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float | None] = mapped_column(default=None)
    # The first KiB of the answer's body (as text).
    response: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
