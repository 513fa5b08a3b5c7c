"""Settings of events (pagemill.events): the outbox, its throttle and its optional NATS sink."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field


def masked_nats_url(url: str) -> str:
    """``events.nats_url`` with any credentials (user and password, or a token) replaced by ``***``, for
    `pagemill config show`; each server of a comma-separated list."""
    masked = []
    for server in url.split(","):
        parts = urlsplit(server.strip())
        if "@" in parts.netloc:
            parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
        masked.append(urlunsplit(parts))
    return ",".join(masked)


class EventSettings(BaseModel):
    """Job and batch events: written with each state change, streamed, delivered to webhooks and NATS."""

    enabled: bool = Field(
        default=True,
        description="Write events. Off, nothing is written to the outbox: job streams, webhooks and NATS "
        "receive nothing (clients poll; job streams are refused). For installations that only poll, and to "
        "measure what events cost.",
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
        "`<nats_subject_prefix>.<type>` (e.g. pagemill.job.succeeded, pagemill.batch.completed), each with "
        "a `Nats-Msg-Id` header (the event id); at least once, from the outbox.",
    )
    nats_subject_prefix: str = Field(default="pagemill", min_length=1, description="NATS subject prefix.")
    nats_page_events: bool = Field(
        default=False, description="Also publish job.page_completed events to NATS (one per page)."
    )
    nats_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long a relay pass waits for NATS: to connect, and for the server to confirm it has "
        "the published events (a flush). Past it the events stay in the outbox for the next pass.",
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
    stream_gap_wait_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="How long an API process waits for a missing event id before the tenant-wide streams "
        "go past it. Ids can commit out of order on Postgres; an id still missing after this was a rolled-"
        "back transaction's (a job's own stream never waits for other jobs' ids).",
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
