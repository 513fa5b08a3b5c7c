"""Resumable (tus) uploads: the state of each upload across API replicas lives here."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pagemill.models.base import Base, UtcDateTime, utcnow


class UploadState(StrEnum):
    """receiving → completed → submitted; deleted (terminated, its storage not yet cleaned) at any time."""

    RECEIVING = "receiving"
    # Every byte is stored, but no job was made of it (refused at completion, or `submit` was false).
    COMPLETED = "completed"
    # It became the job ``job_id``; the job owns the stored bytes from then on.
    SUBMITTED = "submitted"
    DELETED = "deleted"


class Upload(Base):
    """One tus upload: owner, length and offset, where its bytes are, its lock and its expiry."""

    __tablename__ = "uploads"
    __table_args__ = (
        # The sweeper's question: which uploads expired, or were deleted and still hold storage?
        Index("ix_uploads_state_expires", "state", "expires_at"),
        Index("ix_uploads_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    state: Mapped[str] = mapped_column(String(16), default=UploadState.RECEIVING)
    # None until the client sends Upload-Length (creation-defer-length).
    length: Mapped[int | None] = mapped_column(BigInteger, default=None)
    upload_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # The job this upload becomes, chosen at creation: its bytes are written where that job's original
    # lives (jobs/<job_id>/source), so completing the upload copies nothing.
    job_id: Mapped[str] = mapped_column(String(36))
    # Parsed Upload-Metadata: filename, job options, submit flag, sealed password, Idempotency-Key.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    # S3 backend: the multipart upload, its parts so far ([{"number", "etag", "size"}]) and the object that
    # holds the bytes after the last part (fewer than 5 MiB: too small for a part of their own).
    multipart_id: Mapped[str | None] = mapped_column(Text, default=None)
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    pending_key: Mapped[str | None] = mapped_column(String(512), default=None)
    pending_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # The first bytes (pagemill.documents.kinds.SNIFF_BYTES), kept as they arrive: the type is sniffed from
    # them at the last byte without reading the original back.
    head: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # The lock of the PATCH writing now: its token fences every write, and it lapses at locked_until (a
    # replica that died mid-PATCH does not block the upload for ever).
    lock_token: Mapped[str | None] = mapped_column(String(32), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
