"""Jobs and their pages: the source of truth for every document's progress."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from pagemill.models.base import Base, UtcDateTime, utcnow


class JobState(StrEnum):
    """queued → running → succeeded | failed | cancelled; a final job → expired when retention deletes its
    results, or on a purge (right to erasure)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """True for succeeded, failed, cancelled and expired."""
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})


class PageState(StrEnum):
    """pending → done | failed | skipped (skipped: the job was cancelled before the page was read)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Job(Base):
    """One submitted document and everything about its processing."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        # A retried submission with the same Idempotency-Key finds its job instead of making a second one.
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        # The result cache's question: a tenant's earlier jobs of the same document.
        Index("ix_jobs_tenant_sha256", "tenant_id", "sha256"),
        # Retention's question: final jobs that ended before a cutoff.
        Index("ix_jobs_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    # Fixed at submission from the tenant's tier, so a later tier change never alters a running job.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_pages: Mapped[int | None] = mapped_column(Integer, default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Null only while a URL job's document has not been fetched yet (the worker fills them in).
    filename: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(16))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(512))
    # A URL job: where the worker fetches the original from (pagemill.jobs.url_source), and the byte cap of
    # that fetch, fixed at submission from the tier like max_pages.
    source_url: Mapped[str | None] = mapped_column(Text, default=None)
    source_max_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The password of an encrypted PDF, sealed (pagemill.secret_box: Fernet under secrets.key), never in
    # plain text: SQLite keeps old row images in its write-ahead log and free pages long after an update.
    # Kept only while the job runs (workers need it to open the file) and wiped when it ends.
    document_password_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    page_count: Mapped[int | None] = mapped_column(Integer, default=None)
    pages_total: Mapped[int | None] = mapped_column(Integer, default=None)
    pages_done: Mapped[int] = mapped_column(Integer, default=0)
    pages_failed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Sweeps in a row that re-enqueued the job with no page finished in between (reset by progress); past
    # worker.max_requeues the sweeper ends the job instead of re-enqueueing it forever.
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When a worker last claimed pages of this job: the fair scheduler serves the tenant whose jobs were
    # served longest ago first (round robin between tenants of one priority).
    last_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # The tier at submission: its retention applies to the job (fixed, like priority and max_pages).
    tier: Mapped[str | None] = mapped_column(String(32), default=None)
    # No foreign key (batches are never deleted): on SQLite a new foreign key rebuilds the jobs table, and
    # dropping the old one deletes every page row through their ON DELETE CASCADE.
    batch_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    # The job whose results this one copied instead of reading pages (pagemill.jobs.cache). No foreign key:
    # the copy is independent, and outlives a purge of its source.
    cached_from: Mapped[str | None] = mapped_column(String(36), default=None)
    # A cached job's pages and result blobs are those of this job (their owner) instead of copies: a cache
    # hit copies no rows and no blobs. When the owner expires or is purged its rows and results pass to a
    # cached job that still uses them (pagemill.retention), so a purge of the source never breaks a copy.
    pages_from: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    # Retention (pagemill.retention): when the original was deleted, when the results were (state expired),
    # and whether that was a purge asked for by the tenant rather than the retention period.
    source_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Set when retention or a purge starts deleting the job's blobs (before it is expired): from then on no
    # cached job adopts it, so its results, which cached jobs read in place, gain no new readers while they
    # are handed over and deleted (pagemill.retention.service).
    retiring_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    purged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Events (pagemill.events): the last sequence number given to one of the job's events, and when (and at
    # how many finished pages) its last job.progress event was written, for the throttle.
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    progress_event_pages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where to POST this job's events (signed with the tenant's default webhook secret), if the client asked.
    callback_url: Mapped[str | None] = mapped_column(Text, default=None)


class Page(Base):
    """One page of a job: its state, its text and how it was produced."""

    __tablename__ = "pages"
    __table_args__ = (
        # The scheduler's question: which jobs have pages waiting, unclaimed, on this queue?
        Index("ix_pages_queue_state_claim", "queue", "state", "claim_id", "job_id"),
        # The sweeper's question: which claims were not renewed in time?
        Index("ix_pages_claim_expires_at", "claim_expires_at"),
        # The ETA's question: how many pages did this queue's pool finish in the last minute?
        Index("ix_pages_queue_finished_at", "queue", "finished_at"),
    )

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=PageState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # What reading the page takes: the queue of the pool that reads it, whether it needs OCR (else the
    # text-layer pass first), and where in the job's engine chain OCR starts. Set when it is planned.
    queue: Mapped[str | None] = mapped_column(String(16), default=None)
    ocr: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    chain_start: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The claim of the worker reading it now: an id that fences the worker's writes (a page whose claim
    # lapsed and was taken again cannot be committed by its old holder), renewed by the holder's heartbeat
    # until claim_expires_at; a lapsed claim is released by the sweeper and the page offered again.
    claim_id: Mapped[str | None] = mapped_column(String(32), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # A page whose engines were all unavailable waits until not_before; after worker.max_deferrals such
    # waits it fails with the engine's error.
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    deferrals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    engine: Mapped[str | None] = mapped_column(String(32), default=None)
    model: Mapped[str | None] = mapped_column(String(128), default=None)
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    markdown: Mapped[str | None] = mapped_column(Text, default=None)
    # none_as_null: a missing value is SQL NULL, not the JSON text 'null'.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    # The page's lines in their public JSON shape, serialised once by the worker that read the page: result
    # assembly splices them into the JSON result as they are, instead of decoding and re-encoding tens of
    # thousands of lines in one process at the end of a job. NULL on pages saved before this column (their
    # lines are in ``data``).
    lines_json: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[float | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
