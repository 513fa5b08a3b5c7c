"""API shapes of dead letters and their replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pagemill.dead_letters.service import BulkReplay
from pagemill.models import DeadLetter, DeadLetterCategory, DeadLetterState
from pagemill.tenancy.schemas import IsoDateTime


class DeadLetterTask(BaseModel):
    """The task whose work failed."""

    name: str = Field(description="Its name, e.g. `pagemill.read_pages` or `pagemill.ingest_job`.")
    args: list[Any] = Field(description="Its arguments (ids and queue names only).")


class DeadLetterError(BaseModel):
    """The error the work failed with, as the job or page records it."""

    code: str
    message: str
    details: dict[str, Any] | None = None


class DeadLetterOut(BaseModel):
    """Work that spent its attempts: one cause of a job's failure."""

    id: str
    job_id: str
    tenant: str
    category: DeadLetterCategory = Field(description="decode, timeout, engine, crash or other.")
    state: DeadLetterState = Field(description="open, or replayed (open again if the work fails again).")
    pages: list[int] = Field(
        description="Page numbers (from 1) that failed this way; empty when the whole job failed before "
        "its pages existed."
    )
    task: DeadLetterTask
    error: DeadLetterError
    fingerprint: str = Field(description="Names the problem: the same fingerprint is the same failure.")
    attempts: int = Field(description="Attempts the work had when it was given up.")
    failures: int = Field(
        description="How often this cause was recorded (pages saved apart, and again after replays)."
    )
    created_at: datetime = Field(description="The first failure.")
    failed_at: datetime = Field(description="The last failure.")
    replayed_at: datetime | None
    replayed_by: str | None = Field(description="Who replayed it last (key:…, oidc:…, cli:…).")
    replay_count: int

    @classmethod
    def from_row(cls, row: DeadLetter) -> DeadLetterOut:
        """Map a row."""
        return cls(**_fields(row))


class DeadLetterDetail(DeadLetterOut):
    """A dead letter with the end of its traceback (operators only; never shown to tenants)."""

    traceback: str | None = Field(description="The end of the failure's traceback, when there was one.")

    @classmethod
    def from_row(cls, row: DeadLetter) -> DeadLetterDetail:
        """Map a row."""
        return cls(**_fields(row), traceback=row.traceback)


def _fields(row: DeadLetter) -> dict[str, Any]:
    return {
        "id": row.id,
        "job_id": row.job_id,
        "tenant": row.tenant_id,
        "category": row.category,
        "state": row.state,
        "pages": list(row.pages),
        "task": DeadLetterTask(name=row.task_name, args=list(row.task_args)),
        "error": DeadLetterError(code=row.error_code, message=row.error_message, details=row.error_details),
        "fingerprint": row.fingerprint,
        "attempts": row.attempts,
        "failures": row.failures,
        "created_at": row.created_at,
        "failed_at": row.failed_at,
        "replayed_at": row.replayed_at,
        "replayed_by": row.replayed_by,
        "replay_count": row.replay_count,
    }


class DeadLetterList(BaseModel):
    """A page of dead letters, newest failure first."""

    items: list[DeadLetterOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class BulkReplayRequest(BaseModel):
    """Which open dead letters to replay: one category, optionally of one tenant, failed since a time."""

    model_config = ConfigDict(extra="forbid")

    category: DeadLetterCategory
    since: IsoDateTime | None = Field(
        default=None, description="Only those whose last failure is at or after."
    )
    tenant: str | None = Field(default=None, max_length=64, description="Only this tenant's.")
    limit: int | None = Field(
        default=None, ge=1, description="At most this many (capped by dead_letters.bulk_replay_max)."
    )


class SkippedReplay(BaseModel):
    """A dead letter a bulk replay left open, and why (REPLAY_NOT_ALLOWED or REPLAY_SOURCE_GONE)."""

    id: str
    code: str
    message: str
    reason: str | None = None


class BulkReplayOut(BaseModel):
    """What a bulk replay did."""

    replayed: int = Field(description="How many dead letters were replayed (their jobs are running again).")
    dead_letter_ids: list[str]
    skipped: list[SkippedReplay] = Field(description="Those that cannot be replayed now, and why.")
    remaining: int = Field(
        description="Open dead letters of the category (and filters) beyond this call's: call again."
    )

    @classmethod
    def from_outcome(cls, outcome: BulkReplay) -> BulkReplayOut:
        """Map the service's result."""
        return cls(
            replayed=len(outcome.replayed),
            dead_letter_ids=[row.id for row in outcome.replayed],
            skipped=[
                SkippedReplay(
                    id=row_id, code=error.code, message=error.message, reason=error.details.get("reason")
                )
                for row_id, error in outcome.skipped
            ],
            remaining=max(0, outcome.remaining),
        )
