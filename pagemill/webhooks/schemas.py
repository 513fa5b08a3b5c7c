"""API shapes of webhook endpoints, their deliveries and attempts, and the callback secret."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pagemill.egress.guard import MAX_URL_CHARS
from pagemill.events.types import EventType
from pagemill.models import CallbackSecret, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from pagemill.tenancy.schemas import IsoDateTime

MAX_EVENT_TYPES = 20
_TYPES_HELP = (
    'Event types to receive, e.g. ["job.succeeded", "job.failed"]. Empty: every type but '
    "job.page_completed (one event per page), which must be named. webhook.ping is sent by the test call "
    "only."
)


def _checked_types(value: list[EventType] | None) -> list[EventType] | None:
    if value is None:
        return None
    if EventType.WEBHOOK_PING in value:
        raise ValueError("webhook.ping cannot be subscribed to: POST /api/v1/webhooks/{id}/test sends one")
    return list(dict.fromkeys(value))


class WebhookCreate(BaseModel):
    """A new webhook endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="Where events are POSTed: http(s), a public address unless the operator allowed more "
        "(egress.allow_networks).",
    )
    description: str = Field(default="", max_length=256, description="A label for people.")
    event_types: list[EventType] = Field(
        default_factory=list, max_length=MAX_EVENT_TYPES, description=_TYPES_HELP
    )
    enabled: bool = Field(default=True, description="false: registered, but sent nothing.")

    _types = field_validator("event_types")(_checked_types)


class WebhookUpdate(BaseModel):
    """Changes to an endpoint; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_CHARS, description="A new URL.")
    description: str | None = Field(default=None, max_length=256, description="A new label.")
    event_types: list[EventType] | None = Field(
        default=None, max_length=MAX_EVENT_TYPES, description=_TYPES_HELP
    )
    enabled: bool | None = Field(
        default=None,
        description="true enables a disabled endpoint again (it receives events from then on; replay what it "
        "missed); false disables it.",
    )

    _types = field_validator("event_types")(_checked_types)


class WebhookOut(BaseModel):
    """A webhook endpoint (never its secret)."""

    id: str
    url: str
    description: str
    event_types: list[str] = Field(description="Subscribed types; empty: every type but job.page_completed.")
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled: `gone` (it answered 410), `failing` (every attempt failed for "
        "webhooks.disable_after_s), `disabled` (by a PATCH); null when enabled."
    )
    failing_since: datetime | None = Field(
        description="The first failed attempt since the last success; null when the last attempt succeeded."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when the previous secret still signs beside the new one."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_endpoint(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        """Map an endpoint row to its public shape."""
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types or []),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.first_failure_at,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookCreated(WebhookOut):
    """A new endpoint with its signing secret: shown in this response only."""

    secret: str = Field(description="`whsec_` + base64 of 32 random bytes: verify signatures with it.")


class WebhookList(BaseModel):
    """A page of endpoints, newest first."""

    items: list[WebhookOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class SecretOut(BaseModel):
    """A new signing secret: shown in this response only."""

    secret: str = Field(description="`whsec_` + base64 of 32 random bytes.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the previous secret keeps signing beside this one "
        "(webhooks.rotation_grace_s); null when there was none."
    )


class CallbackSecretOut(BaseModel):
    """The tenant's secret for job callback URLs (never the secret itself)."""

    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the previous secret still signs beside the current one."
    )

    @classmethod
    def from_row(cls, row: CallbackSecret) -> CallbackSecretOut:
        """Map the row to its public shape."""
        return cls(
            created_at=row.created_at,
            updated_at=row.updated_at,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )


class AttemptOut(BaseModel):
    """One HTTP attempt of a delivery."""

    number: int = Field(description="1 for the first attempt, counted over replays too.")
    started_at: datetime
    status_code: int | None = Field(description="The receiver's status; null when it did not answer.")
    latency_ms: float | None = Field(description="From the start of the attempt to the answer's headers.")
    response: str | None = Field(description="The first KiB of the answer's body.")
    error: str | None = Field(description="Why the attempt failed (timeout, refused, status, redirect).")

    @classmethod
    def from_attempt(cls, attempt: WebhookAttempt) -> AttemptOut:
        """Map an attempt row to its public shape."""
        return cls(
            number=attempt.number,
            started_at=attempt.started_at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            response=attempt.response,
            error=attempt.error,
        )


class DeliveryOut(BaseModel):
    """One event to one endpoint (or a job's callback URL), with every attempt."""

    id: str
    webhook_id: str | None = Field(description="The endpoint; null for a job's callback URL.")
    url: str | None = Field(description="A callback delivery's URL (the job's callback_url); else null.")
    event_id: str = Field(description="The CloudEvents id: the `webhook-id` header of every attempt.")
    event_type: str
    job_id: str | None
    state: str = Field(
        description="pending (an attempt is due or under way), succeeded, failed (another attempt is "
        "scheduled at next_attempt_at) or dead (no attempt left, or the endpoint was disabled)."
    )
    attempt_count: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut]

    @classmethod
    def from_rows(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        """Map a delivery and its attempts to the public shape."""
        return cls(
            id=delivery.id,
            webhook_id=delivery.endpoint_id,
            url=delivery.url,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            job_id=delivery.job_id,
            state=delivery.state,
            attempt_count=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            attempts=[AttemptOut.from_attempt(attempt) for attempt in attempts],
        )


class DeliveryList(BaseModel):
    """A page of deliveries, newest first."""

    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class ReplayFailed(BaseModel):
    """Which failed deliveries to send again."""

    model_config = ConfigDict(extra="forbid")

    since: IsoDateTime = Field(description="Deliveries made at or after this time (with a zone).")


class ReplayResult(BaseModel):
    """The deliveries a bulk replay made due again."""

    replayed: int = Field(description="How many (at most 1000 per call: call again for more).")
    delivery_ids: list[str]
