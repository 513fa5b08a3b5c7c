"""The event outbox: every change of a job's state, written in the transaction that made the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pagemill.models.base import Base, UtcDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY (its rowid); Postgres gets a 64-bit identity.
_EVENT_ID = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    """One event (CloudEvents 1.0 on the wire: pagemill.events.envelope).

    ``id`` orders all events (the tenant-wide stream resumes on it); ``seq`` numbers one job's events 1, 2,
    3 ... with no gap (the job's stream resumes on it): it is taken from the job row, which the writing
    transaction holds locked to its commit, so a job's events also commit in ``seq`` order.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("job_id", "seq", name="uq_events_job_id_seq"),
        Index("ix_events_tenant_id_id", "tenant_id", "id"),
        # The relay's question: which events have not been handed to their sinks yet?
        Index("ix_events_relayed_at_id", "relayed_at", "id"),
    )

    id: Mapped[int] = mapped_column(_EVENT_ID, primary_key=True, autoincrement=True)
    # The CloudEvents id: unique, and the webhook-id of every delivery of this event.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    # No foreign keys: events are kept (and purged) on their own schedule (events.retention_s).
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    batch_id: Mapped[str | None] = mapped_column(String(36), default=None)
    seq: Mapped[int | None] = mapped_column(Integer, default=None)
    type: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # When the relay handed the event to its sinks (webhook deliveries, NATS); set at once for an event
    # that no sink wants.
    relayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
