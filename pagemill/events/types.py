"""The event types and their CloudEvents envelope."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from pagemill.models import Event, JobState

CLOUD_TYPE_PREFIX = "com.pagemill."


class EventType(StrEnum):
    """What happened. On the wire the CloudEvents ``type`` is ``com.pagemill.<value>``."""

    JOB_QUEUED = "job.queued"
    JOB_STARTED = "job.started"
    JOB_PROGRESS = "job.progress"
    JOB_PAGE_COMPLETED = "job.page_completed"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_EXPIRED = "job.expired"
    BATCH_COMPLETED = "batch.completed"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_PING = "webhook.ping"

    @property
    def is_final(self) -> bool:
        """The last event of a job's run (its stream closes after it)."""
        return self in FINAL_EVENT_TYPES


FINAL_EVENT_TYPES = frozenset(
    {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED, EventType.JOB_EXPIRED}
)

ENDED_BY_STATE = {
    JobState.SUCCEEDED: EventType.JOB_SUCCEEDED,
    JobState.FAILED: EventType.JOB_FAILED,
    JobState.CANCELLED: EventType.JOB_CANCELLED,
    JobState.EXPIRED: EventType.JOB_EXPIRED,
}


def event_source(event: Event) -> str:
    """The CloudEvents ``source``: the resource the event is about."""
    if event.job_id is not None:
        return f"/api/v1/jobs/{event.job_id}"
    if event.batch_id is not None:
        return f"/api/v1/batches/{event.batch_id}"
    return f"/api/v1/tenants/{event.tenant_id}"


def envelope(event: Event) -> dict[str, Any]:
    """The event as a CloudEvents 1.0 structured JSON object (what every channel sends)."""
    subject = event.job_id or event.batch_id or event.tenant_id
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.event_id,
        "source": event_source(event),
        "type": CLOUD_TYPE_PREFIX + event.type,
        "subject": subject,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": event.data,
    }
    if event.seq is not None:
        body["sequence"] = event.seq  # an extension attribute: the event's place among its job's events
    return body


def to_cloudevent(event: Event) -> CloudEvent:
    """The event as the ``cloudevents`` SDK's object (validated against the spec)."""
    body = envelope(event)
    data = body.pop("data")
    body["time"] = event.time
    return CloudEvent(body, data)


def envelope_json(event: Event) -> bytes:
    """The structured-mode JSON bytes of the event, written by the ``cloudevents`` SDK."""
    return JSONFormat().write(to_cloudevent(event))
