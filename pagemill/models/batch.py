"""Batches: many documents submitted in one request with one set of options, followed as one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pagemill.models.base import Base, UtcDateTime, utcnow


class ItemKind:
    """Where a batch item's document came from."""

    FILE = "file"
    URL = "url"
    UPLOAD = "upload"


class Batch(Base):
    """One batch submission. Its jobs carry ``batch_id``; its state is counted from them when read."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    items_total: Mapped[int] = mapped_column(Integer)
    items_refused: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When its last job ended (the batch.completed event was written then, once).
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class BatchItem(Base):
    """One item of a batch in submission order: the job made for it, or why it was refused."""

    __tablename__ = "batch_items"

    batch_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    # The file name, the URL or the upload id, as the client sent it (sanitised for files).
    source: Mapped[str] = mapped_column(Text)
    # No foreign key: a refused item has no job, and a job's rows may outlive nothing else here.
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
