"""API shape of the detailed health report (``GET /api/v1/health``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ComponentHealth(BaseModel):
    """One dependency or engine: whether it answered, how fast, and why not."""

    status: Literal["ok", "down"]
    latency_ms: float = Field(description="How long the check took (a timed-out check: its limit).")
    error: str | None = Field(default=None, description="Why it is down; null when ok.")


class QueueHealth(BaseModel):
    """What waits on one queue and who consumes it. A null figure could not be read (its store is down)."""

    depth: int | None = Field(
        description="Work waiting: pages (cpu, gpu) or jobs (ingest) not taken by a worker, webhook "
        "deliveries due (webhooks). The same figure as pagemill_queue_depth."
    )
    oldest_age_s: float | None = Field(
        description="How long the longest-waiting of it has waited (0 when nothing waits); see "
        "pagemill_oldest_queued_age_seconds in docs/operations.md."
    )
    workers: int | None = Field(description="Live workers consuming the queue, from their heartbeats.")
    broker_messages: int | None = Field(
        description="Messages waiting in the broker (page messages are units of work, not pages)."
    )


class WorkerHealth(BaseModel):
    """A live worker, as its last heartbeat told."""

    node: str = Field(description="Celery node name, e.g. celery@host.")
    queues: list[str]
    host: str
    pid: int
    pool: str = Field(description="prefork or threads.")
    concurrency: int | None = Field(description="Pool processes or threads.")
    started_at: datetime
    last_beat_s: float = Field(description="Seconds since its last heartbeat.")


class MigrationsHealth(BaseModel):
    """Where the database schema stands against this release."""

    current: str | None = Field(description="The revision recorded in the database (null: never migrated).")
    heads: list[str] = Field(description="This release's newest revision(s).")
    up_to_date: bool = Field(description="False: run `pagemill migrate`.")


class HealthReport(BaseModel):
    """Every part of a running Pagemill, checked now (nothing cached)."""

    status: Literal["ok", "degraded", "down"] = Field(
        description="down: the database, broker or blob store does not answer, or the schema is behind; "
        "degraded: an engine is down, or work waits on a queue no live worker consumes; ok otherwise."
    )
    version: str
    mode: Literal["embedded", "distributed"]
    checked_at: datetime
    components: dict[str, ComponentHealth] = Field(description="database, broker, storage.")
    engines: dict[str, ComponentHealth] = Field(description="The engines of the configured default chain.")
    queues: dict[str, QueueHealth] = Field(description="ingest, cpu, gpu, webhooks.")
    workers: list[WorkerHealth]
    migrations: MigrationsHealth | None = Field(description="Null when the database does not answer.")
