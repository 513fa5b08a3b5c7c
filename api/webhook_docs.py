"""The OpenAPI schema's ``webhooks`` section (OpenAPI 3.1): one entry per event type, the request Pagemill
sends to an endpoint (or a job's callback URL) with its Standard Webhooks headers and CloudEvents body."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header
from pydantic import BaseModel

from pagemill.events.types import EventType
from pagemill.webhooks.payloads import BatchCloudEvent, JobCloudEvent, PageCloudEvent, WebhookCloudEvent

_WHEN: dict[EventType, tuple[type[BaseModel], str]] = {
    EventType.JOB_QUEUED: (JobCloudEvent, "The job was accepted."),
    EventType.JOB_STARTED: (JobCloudEvent, "A worker opened the job's document."),
    EventType.JOB_PROGRESS: (
        JobCloudEvent,
        "Pages were finished (at most one per events.progress_interval_s per job, plus one per further "
        "tenth).",
    ),
    EventType.JOB_PAGE_COMPLETED: (
        PageCloudEvent,
        "One page was finished. Sent only to endpoints that name job.page_completed in event_types.",
    ),
    EventType.JOB_SUCCEEDED: (
        JobCloudEvent,
        "The job ended with pages read; data.results has the result URLs.",
    ),
    EventType.JOB_FAILED: (JobCloudEvent, "The job ended failed; data.error says why."),
    EventType.JOB_CANCELLED: (JobCloudEvent, "The job was cancelled (never followed by job.succeeded)."),
    EventType.JOB_EXPIRED: (JobCloudEvent, "Retention or a purge deleted the job's results."),
    EventType.BATCH_COMPLETED: (BatchCloudEvent, "The last job of a batch ended."),
    EventType.WEBHOOK_DISABLED: (
        WebhookCloudEvent,
        "An endpoint of the tenant was disabled: it answered 410, or failed for webhooks.disable_after_s.",
    ),
    EventType.WEBHOOK_PING: (
        WebhookCloudEvent,
        "A test: POST /api/v1/webhooks/{id}/test (to that endpoint).",
    ),
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx acknowledges the delivery; nothing is read but the first KiB of the body."},
    410: {
        "description": "Gone: the endpoint is disabled at once (a callback delivery ends); no further "
        "attempt."
    },
    429: {
        "description": "Too many requests: retried no sooner than Retry-After (capped by "
        "webhooks.retry_after_max_s), else on the retry schedule; 503 likewise."
    },
    "default": {
        "description": "Anything else (3xx: redirects are not followed; 4xx; 5xx; no answer within "
        "webhooks.timeout_s) fails the attempt: retried on webhooks.retry_schedule_s with jitter."
    },
}

WebhookIdHeader = Annotated[
    str,
    Header(alias="webhook-id", description="The event's id: the same on every attempt. Deduplicate on it."),
]
WebhookTimestampHeader = Annotated[
    str,
    Header(
        alias="webhook-timestamp",
        description="Unix seconds of this attempt (new on each); refuse one far from your clock.",
    ),
]
WebhookSignatureHeader = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description="`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` with the secret "
        "(the bytes after `whsec_`, base64-decoded); space-separated, two during a rotation's grace.",
    ),
]


def install_webhook_docs(app: FastAPI) -> None:
    """Document every event type in ``app``'s OpenAPI ``webhooks`` section."""
    for type_, (model, when) in _WHEN.items():
        _register(app, type_, model, when)


def _register(app: FastAPI, type_: EventType, model: type[BaseModel], when: str) -> None:
    def receive(
        body: BaseModel,
        webhook_id: WebhookIdHeader,
        webhook_timestamp: WebhookTimestampHeader,
        webhook_signature: WebhookSignatureHeader,
    ) -> None:
        """Documentation only: the request Pagemill sends."""

    # The body's model differs per type: set on the function itself (annotations are strings here).
    receive.__annotations__["body"] = model

    app.webhooks.post(
        type_.value,
        summary=f"com.pagemill.{type_.value}",
        description=f"{when}\n\nPOSTed as `application/json` (a CloudEvents 1.0 structured event), "
        "signed per Standard Webhooks. See docs/api.md, Webhooks.",
        operation_id=f"webhook_{type_.value.replace('.', '_')}",
        responses=_RESPONSES,
        tags=["webhook payloads"],
    )(receive)
