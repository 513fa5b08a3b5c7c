"""Public shapes of batches (the API's response models and the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pagemill.batches.repository import ItemRow
from pagemill.jobs.options import JobOptions
from pagemill.jobs.schemas import ErrorInfo
from pagemill.models import Batch, JobState

REFUSED = "refused"


class BatchItemOut(BaseModel):
    """One item of a batch, in submission order."""

    position: int = Field(
        description="0-based position in the submission: files, then urls, then upload ids."
    )
    kind: str = Field(description="file, url or upload.")
    source: str = Field(description="The file name, the URL or the upload id.")
    job_id: str | None = Field(description="The item's job; null when the item was refused at submission.")
    state: str = Field(
        description="The job's state (queued, running, succeeded, failed, cancelled, expired), or refused."
    )
    pages_total: int | None = None
    pages_done: int = 0
    cached_from: str | None = Field(default=None, description="Set when the result cache answered it.")
    error: ErrorInfo | None = Field(
        default=None, description="Why the item was refused, or why its job failed."
    )

    @classmethod
    def from_row(cls, row: ItemRow) -> BatchItemOut:
        """Map an item and its job."""
        item, job = row
        if job is None:
            error = ErrorInfo(
                code=item.error_code or "INVALID_INPUT",
                message=item.error_message or "",
                details=item.error_details or {},
            )
            return cls(
                position=item.position,
                kind=item.kind,
                source=item.source,
                job_id=item.job_id,
                state=REFUSED,
                error=error,
            )
        job_error = None
        if job.error_code:
            job_error = ErrorInfo(
                code=job.error_code, message=job.error_message or "", details=job.error_details or {}
            )
        return cls(
            position=item.position,
            kind=item.kind,
            source=item.source,
            job_id=job.id,
            state=job.state,
            pages_total=job.pages_total,
            pages_done=job.pages_done,
            cached_from=job.cached_from,
            error=job_error,
        )


class BatchPages(BaseModel):
    """Pages of the batch's jobs."""

    total: int = Field(description="Pages selected in the jobs opened so far.")
    done: int
    failed: int


class BatchOut(BaseModel):
    """A batch: its counts per state, page progress and every item."""

    id: str
    state: str = Field(description="active while any job is queued or running, else finished.")
    options: JobOptions
    created_at: datetime
    items_total: int
    counts: dict[str, int] = Field(
        description="Items per state: queued, running, succeeded, failed, cancelled, expired, refused."
    )
    pages: BatchPages
    job_ids: list[str] = Field(description="The jobs made, in submission order.")
    items: list[BatchItemOut]

    @classmethod
    def from_rows(cls, batch: Batch, rows: list[ItemRow]) -> BatchOut:
        """Map a batch and its items (with their jobs)."""
        items = [BatchItemOut.from_row(row) for row in rows]
        counts = {state.value: 0 for state in JobState} | {REFUSED: 0}
        for item in items:
            counts[item.state] = counts.get(item.state, 0) + 1
        jobs = [row.job for row in rows if row.job is not None]
        active = any(not JobState(job.state).is_final for job in jobs)
        return cls(
            id=batch.id,
            state="active" if active else "finished",
            options=JobOptions.model_validate(batch.options),
            created_at=batch.created_at,
            items_total=batch.items_total,
            counts=counts,
            pages=BatchPages(
                total=sum(job.pages_total or 0 for job in jobs),
                done=sum(job.pages_done for job in jobs),
                failed=sum(job.pages_failed for job in jobs),
            ),
            job_ids=[job.id for job in jobs],
            items=items,
        )


class BatchSummary(BaseModel):
    """A batch in a listing (GET the batch for its items and counts)."""

    id: str
    created_at: datetime
    items_total: int
    items_refused: int

    @classmethod
    def from_batch(cls, batch: Batch) -> BatchSummary:
        """Map a batch row."""
        return cls(
            id=batch.id,
            created_at=batch.created_at,
            items_total=batch.items_total,
            items_refused=batch.items_refused,
        )


class BatchList(BaseModel):
    """One page of a batch listing."""

    items: list[BatchSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null at the end.")
