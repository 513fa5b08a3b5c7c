"""Public shapes of jobs and pages (the API's response models and the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from pagemill.jobs.options import JobOptions
from pagemill.jobs.results import page_lines
from pagemill.models import Job, Page


class ErrorInfo(BaseModel):
    """Why a job or a page failed."""

    code: str = Field(description="Stable, machine-readable error code, e.g. CORRUPT_FILE.")
    message: str = Field(description="What went wrong, for people.")
    details: dict[str, Any] = Field(default_factory=dict, description="Machine-readable context.")


class PageProgress(BaseModel):
    """Page counts of a job."""

    total: int | None = Field(description="Pages selected for processing; null until the document is opened.")
    done: int = Field(description="Pages read successfully.")
    failed: int = Field(description="Pages that could not be read.")


class Timings(BaseModel):
    """How long the job waited and ran, in milliseconds."""

    queued_ms: float | None = None
    running_ms: float | None = None


class JobOut(BaseModel):
    """A job: its state, progress and, when it failed, why."""

    id: str
    state: str = Field(
        description="queued, running, succeeded, failed, cancelled or expired (its results were deleted by "
        "retention or a purge)."
    )
    filename: str | None = Field(
        description="The document's name (a URL job: the last segment of its URL); null until a URL job's "
        "document is fetched."
    )
    kind: str | None = Field(
        description="Detected type: pdf, png, jpeg, tiff or webp; null until a URL job's document is fetched."
    )
    size_bytes: int | None = Field(description="Null until a URL job's document is fetched.")
    sha256: str | None = Field(description="Null until a URL job's document is fetched.")
    source_url: str | None = Field(
        default=None, description="A URL job: the URL the worker fetches the document from; else null."
    )
    callback_url: str | None = Field(
        default=None,
        description="Where the job's events are POSTed, signed with the tenant's callback secret (see "
        "docs/api.md, Webhooks); null without one.",
    )
    options: JobOptions
    cancel_requested: bool
    page_count: int | None = Field(
        description="Pages in the document; null until it is opened (and when it could not be opened)."
    )
    pages: PageProgress
    error: ErrorInfo | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: Timings
    batch_id: str | None = Field(default=None, description="The batch the job was submitted in, if any.")
    cached_from: str | None = Field(
        default=None,
        description="The earlier job whose results this job answers with instead of reading the pages "
        "(result cache); "
        "null when the pages were read for this job.",
    )
    original_deleted_at: datetime | None = Field(
        default=None,
        description="When retention (or a purge) deleted the original document; results stay. A job "
        "answered from the result cache keeps none: its finished_at.",
    )
    expired_at: datetime | None = Field(
        default=None, description="When the results were deleted (state expired): retention, or a purge."
    )
    purged: bool = Field(default=False, description="The results were deleted at the tenant's request.")
    queue_position: int | None = Field(
        default=None,
        description="Pages of other jobs the scheduler serves before this job's remaining pages (an "
        "approximation of the fair scheduler; see docs/api.md, ETA). Only on GET /jobs/{id} of an active "
        "job; null otherwise.",
    )
    eta_s: float | None = Field(
        default=None,
        description="Estimated seconds until the job's pages are read: (queue_position + its pending pages) "
        "/ the pool's pages per second over the last minute. Null when unknown (pages not planned yet, or "
        "the pool read nothing lately), on final jobs and in listings.",
    )

    @classmethod
    def from_job(cls, job: Job, *, queue_position: int | None = None, eta_s: float | None = None) -> JobOut:
        """Map a job row to its public shape (with its estimate, where one was made)."""
        error = None
        if job.error_code:
            error = ErrorInfo(
                code=job.error_code, message=job.error_message or "", details=job.error_details or {}
            )
        queued_ms = running_ms = None
        if job.started_at:
            queued_ms = (job.started_at - job.created_at).total_seconds() * 1000
            if job.finished_at:
                running_ms = (job.finished_at - job.started_at).total_seconds() * 1000
        return cls(
            id=job.id,
            state=job.state,
            filename=job.filename,
            kind=job.kind,
            size_bytes=job.size_bytes,
            sha256=job.sha256,
            source_url=job.source_url,
            callback_url=job.callback_url,
            options=JobOptions.model_validate(job.options),
            cancel_requested=job.cancel_requested,
            page_count=job.page_count,
            pages=PageProgress(total=job.pages_total, done=job.pages_done, failed=job.pages_failed),
            error=error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            timings=Timings(queued_ms=queued_ms, running_ms=running_ms),
            batch_id=job.batch_id,
            cached_from=job.cached_from,
            original_deleted_at=job.source_deleted_at,
            expired_at=job.expired_at,
            purged=bool(job.purged),
            queue_position=queue_position,
            eta_s=eta_s,
        )


class JobList(BaseModel):
    """One page of a job listing."""

    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null at the end.")


class LineOut(BaseModel):
    """A line of text with its box (x0, y0, x1, y1 in 0..1 of the upright page) where the engine gives it."""

    text: str
    bbox: list[float] | None = None
    confidence: float | None = None


class PageOut(BaseModel):
    """One page's result."""

    page: int = Field(description="1-based page number in the document.")
    state: str = Field(description="pending, done, failed or skipped.")
    text: str | None = None
    markdown: str | None = None
    engine: str | None = Field(
        default=None, description="What produced the text: text_layer, tesseract, rapidocr."
    )
    model: str | None = None
    rotation: int = Field(default=0, description="Degrees the page was turned to read it upright.")
    settings: dict[str, Any] = Field(default_factory=dict)
    attempts: int
    duration_ms: float | None = None
    error: ErrorInfo | None = None
    blocks: list[dict[str, Any]] | None = Field(
        default=None,
        description="Office documents: the page's structure in reading order (heading, paragraph, "
        "list_item, table with cells, image, note, code, attachment); null for PDF and image pages.",
    )
    segments: list[dict[str, Any]] | None = Field(
        default=None,
        description="Recordings: the piece's timed segments (start_s, end_s from the start of the recording, "
        "text; avg_logprob, no_speech_prob and words where the engine gives them); null for documents.",
    )
    # Last: the bulky part (the JSON result splices each page's stored lines in at the end of its object).
    lines: list[LineOut] = Field(default_factory=list)

    @classmethod
    def from_page(cls, page: Page) -> PageOut:
        """Map a page row to its public shape."""
        data = page.data or {}
        error = None
        if page.error_code:
            error = ErrorInfo(code=page.error_code, message=page.error_message or "")
        return cls(
            page=page.index + 1,
            state=page.state,
            text=page.text,
            markdown=page.markdown,
            engine=page.engine,
            model=page.model,
            rotation=page.rotation,
            settings=data.get("settings", {}),
            attempts=page.attempts,
            duration_ms=page.duration_ms,
            error=error,
            blocks=data.get("blocks"),
            segments=data.get("segments"),
            lines=[LineOut(**line) for line in page_lines(page)],
        )


class PageList(BaseModel):
    """A job's finished pages after a page number, in page order (GET /jobs/{id}/pages)."""

    items: list[PageOut] = Field(description="Finished pages (done or failed), in page order.")
    next_after: int = Field(
        description="Pass as `after` to get the pages that finish next: the listing never passes a page "
        "still being read, so polling with it sees every page once."
    )
    has_more: bool = Field(
        description="More pages may follow: the job is still active, or this page of the listing is full. "
        "False once every page was listed and the job has ended."
    )
    state: str = Field(description="The job's state.")
    pages: PageProgress
