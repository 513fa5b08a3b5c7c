"""Dead letters: work that spent its attempts (pagemill.dead_letters), kept for operators to replay."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from pagemill.models.base import Base, UtcDateTime, utcnow


class DeadLetterCategory(StrEnum):
    """Why the work failed for good (see pagemill.dead_letters.categories for the mapping from errors)."""

    DECODE = "decode"
    TIMEOUT = "timeout"
    ENGINE = "engine"
    CRASH = "crash"
    OTHER = "other"


class DeadLetterState(StrEnum):
    """open (the work failed, nobody replayed it yet) → replayed (sent again); a replayed one whose work
    fails again the same way is open again."""

    OPEN = "open"
    REPLAYED = "replayed"


class DeadLetter(Base):
    """One cause of a job's failure: the job, its pages that failed that way (none for a job-level failure),
    the task, category, error and traceback fingerprint; one row per (job, category, fingerprint)."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        # Pages of one job failing the same way are one row (their numbers in ``pages``): recording takes
        # the job's row lock first, and this keeps a second row from ever appearing beside it.
        UniqueConstraint(
            "job_id", "category", "fingerprint", name="uq_dead_letters_job_category_fingerprint"
        ),
        # The listing's question (newest failure first, optionally of one state, category or tenant) and the
        # gauge's (open ones by category).
        Index("ix_dead_letters_failed_at", "failed_at", "id"),
        Index("ix_dead_letters_state_category", "state", "category"),
        Index("ix_dead_letters_tenant_failed_at", "tenant_id", "failed_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Jobs are never deleted by the service (retention expires them); a test or an operator deleting one
    # takes its dead letters along.
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=DeadLetterState.OPEN)
    # 1-based page numbers (as the API shows pages); empty for a failure of the whole job before its pages
    # existed (its document could not be opened).
    pages: Mapped[list[int]] = mapped_column(JSON, default=list)
    # The task whose work failed, by name, and its arguments (ids only, as every message).
    task_name: Mapped[str] = mapped_column(String(64))
    task_args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error_code: Mapped[str] = mapped_column(String(64))
    error_message: Mapped[str] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    fingerprint: Mapped[str] = mapped_column(String(16))
    # The end of the traceback (dead_letters.traceback_max_chars), when there was one: operators only.
    traceback: Mapped[str | None] = mapped_column(Text, default=None)
    # Attempts the work had when it was given up (the most of its pages').
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How often this cause was recorded: pages saved apart, and failures again after a replay.
    failures: Mapped[int] = mapped_column(Integer, default=1)
    # Whether the job's document needed a password (sealed while the job runs, wiped when it ends): a
    # replay of such a job after it ended cannot open the document.
    needs_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    replayed_by: Mapped[str | None] = mapped_column(String(160), default=None)
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
