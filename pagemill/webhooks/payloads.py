"""The shapes of the event payloads sent to webhooks and callback URLs (CloudEvents 1.0, structured JSON),
for the OpenAPI schema's ``webhooks`` section. What is sent is pagemill.events.types.envelope(event)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class PageCounts(BaseModel):
    """A job's page counts when the event was written."""

    total: int | None = Field(description="Pages selected; null until the document was opened.")
    done: int
    failed: int


class EventError(BaseModel):
    """Why the job failed."""

    code: str = Field(description="A stable error code, e.g. CORRUPT_FILE.")
    message: str


class JobEventData(BaseModel):
    """The thin ``data`` of a job event: fetch the job or its results for more."""

    job_id: str
    tenant_id: str
    state: str = Field(description="The job's state: queued, running, succeeded, failed, cancelled, expired.")
    pages: PageCounts
    error: EventError | None
    batch_id: str | None = Field(default=None, description="Present when the job is in a batch.")
    cached_from: str | None = Field(default=None, description="Present when served from the result cache.")
    results: dict[str, str] | None = Field(
        default=None,
        description="job.succeeded (and job.cancelled with pages read): a result URL per format (paths "
        "unless events.public_base_url is set).",
    )


class PageInfo(BaseModel):
    """The page a job.page_completed event is about."""

    number: int = Field(description="1-based page number.")
    state: str = Field(description="done or failed.")
    url: str = Field(description="The page's result: GET it with the API key.")
    engine: str | None = Field(default=None, description="The engine that read it (done pages).")
    error_code: str | None = Field(default=None, description="Why it failed (failed pages).")


class PageEventData(JobEventData):
    """A job event's data with the page that was finished."""

    page: PageInfo


class BatchEventData(BaseModel):
    """The data of batch.completed."""

    batch_id: str
    tenant_id: str
    jobs: dict[str, int] = Field(description="How many of the batch's jobs ended in each state.")
    items_total: int
    items_refused: int


class WebhookEventData(BaseModel):
    """The data of webhook.disabled and webhook.ping."""

    tenant_id: str
    webhook_id: str
    url: str | None
    reason: str | None = Field(
        default=None,
        description="webhook.disabled: `gone` (it answered 410) or `failing` (it failed too long).",
    )


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode (``content-type: application/json``)."""

    specversion: Literal["1.0"]
    id: str = Field(description="Unique per event; also the `webhook-id` header: deduplicate on it.")
    source: str = Field(
        description="The resource: /api/v1/jobs/{id}, /api/v1/batches/{id}, /api/v1/tenants/{id}."
    )
    type: str = Field(description="`com.pagemill.` + the event type, e.g. com.pagemill.job.succeeded.")
    subject: str = Field(description="The job, batch or tenant id.")
    time: datetime = Field(description="When the change happened (UTC).")
    datacontenttype: Literal["application/json"]


class JobCloudEvent(CloudEvent):
    """A job event."""

    sequence: int = Field(description="The event's place among its job's events: 1, 2, 3 ... with no gap.")
    data: JobEventData


class PageCloudEvent(CloudEvent):
    """A job.page_completed event."""

    sequence: int = Field(description="The event's place among its job's events: 1, 2, 3 ... with no gap.")
    data: PageEventData


class BatchCloudEvent(CloudEvent):
    """A batch event."""

    data: BatchEventData


class WebhookCloudEvent(CloudEvent):
    """A webhook event (about an endpoint of the tenant)."""

    data: WebhookEventData
