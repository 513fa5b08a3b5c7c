"""Settings of events (pagemill.events): the outbox, its throttle and its optional NATS sink."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EventSettings(BaseModel):
    """Job and batch events: written with each state change, streamed, delivered to webhooks and NATS."""

    enabled: bool = Field(
        default=True,
        description="Write events. Off, nothing is written to the outbox: job streams, webhooks and NATS "
        "receive nothing (clients poll). For installations that only poll, and to measure the cost of events.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="The API's public address (e.g. https://pagemill.example.com): event payloads name "
        "result URLs under it; unset, they are paths (/api/v1/jobs/...).",
    )
    progress_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="At most one job.progress event per job in this many seconds (plus one each time "
        "another 10% of the job's pages is finished).",
    )
    page_events: Literal["subscribed", "always", "never"] = Field(
        default="subscribed",
        description="When a job.page_completed event is written for each finished page: `subscribed` when "
        "an enabled webhook of the tenant subscribes to job.page_completed (or events.nats_page_events is "
        "on), `always`, or `never`. Page events cost one row per page.",
    )
    nats_url: str | None = Field(
        default=None,
        description="Publish every event (CloudEvents JSON) to NATS at this URL, on subjects "
        "`<nats_subject_prefix>.job.<type>` (e.g. pagemill.job.succeeded); at least once, from the outbox.",
    )
    nats_subject_prefix: str = Field(default="pagemill", min_length=1, description="NATS subject prefix.")
    nats_page_events: bool = Field(
        default=False, description="Also publish job.page_completed events to NATS (one per page)."
    )
    retention_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="Events older than this are deleted by the sweeper (a stream or replay cannot go back "
        "further); webhook delivery records go with them.",
    )
    stream_poll_s: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="How often an API process with open event streams looks for new events (one query for "
        "all of its streams).",
    )
    stream_heartbeat_s: float = Field(
        default=15.0, gt=0, description="A comment line on idle SSE streams (and a ping on WebSockets)."
    )
    stream_token_ttl_s: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Lifetime of a stream token (POST /api/v1/stream-tokens), for browsers that cannot send "
        "an Authorization header on an EventSource or WebSocket.",
    )
