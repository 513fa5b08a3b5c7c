"""Live event streams (SSE and WebSocket): a job's events by sequence, or a tenant's by global id.

Every stream first subscribes at its process's :class:`~pagemill.events.hub.EventHub`, then reads what the
client missed from the database (after its ``Last-Event-ID``), then goes on with what the hub hands it,
skipping what the database read covered already: no gap and no duplicate across that seam, and none across
replicas (every replica reads the same outbox). A stream holds no database session while it waits; each
read is one short statement in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.orm import Session

from pagemill.db import autocommit_scope
from pagemill.errors import EventsDisabled
from pagemill.events import repository as repo
from pagemill.events import stream_tokens
from pagemill.events.hub import EventHub, StreamEvent
from pagemill.events.types import EventType, envelope
from pagemill.jobs import service as jobs
from pagemill.models import Event, JobState
from pagemill.settings import Settings
from pagemill.tenancy.principal import Principal

START_LOOKBACK = 1000
"""A new poller starts this many ids below the newest: an event whose id was taken before it started but
that commits after still reaches the streams."""
BACKLOG_PAGE = 500
"""Events read from the database at a time when a stream catches up."""

STREAM_TYPES = frozenset(str(type_) for type_ in EventType)
"""Every event type a tenant stream can filter on."""


def stream_event(event: Event) -> StreamEvent:
    """The event for the streams: ids and its CloudEvents JSON (one line, serialised once)."""
    return StreamEvent(
        id=event.id,
        seq=event.seq,
        tenant_id=event.tenant_id,
        job_id=event.job_id,
        type=event.type,
        body=json.dumps(envelope(event), separators=(",", ":")),
    )


def websocket_message(event: StreamEvent) -> str:
    """A WebSocket text message: ``{"seq": N, "event": {CloudEvent}}``."""
    return f'{{"seq":{event.seq},"event":{event.body}}}'


# -- the process's hub -------------------------------------------------------------------------------


def _read_new(after_id: int, missing: Sequence[int], limit: int) -> list[StreamEvent]:
    with autocommit_scope() as session:
        rows = list(repo.events_after(session, after_id, limit=limit))
        rows += repo.events_among(session, missing)
        return [stream_event(row) for row in rows]


def _newest_id() -> int:
    with autocommit_scope() as session:
        return repo.last_event_id(session)


def _start_after() -> int:
    return max(0, _newest_id() - START_LOOKBACK)


_hub: tuple[asyncio.AbstractEventLoop, EventHub] | None = None


def get_hub(settings: Settings) -> EventHub:
    """This process's hub (one per event loop), made on first use."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub[0] is not loop:
        hub = EventHub(
            _read_new,
            _start_after,
            poll_s=settings.events.stream_poll_s,
            gap_wait_s=settings.events.stream_gap_wait_s,
        )
        _hub = (loop, hub)
    return _hub[1]


def require_events(settings: Settings) -> None:
    """EventsDisabled when this server writes no events: a stream would never get any (poll instead)."""
    if not settings.events.enabled:
        raise EventsDisabled()


# -- stream tokens -----------------------------------------------------------------------------------


def make_stream_token(
    session: Session, settings: Settings, principal: Principal, job_id: str | None
) -> stream_tokens.StreamToken:
    """A stream token for the caller's tenant, or for one of its jobs (NotFound if it has no such job)."""
    if job_id is not None:
        job_id = jobs.get_job(session, principal.tenant_id, job_id).id
    return stream_tokens.issue(settings, principal, job_id)


# -- a job's stream ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStreamStart:
    """What a job stream knows before it starts: the job's id as stored, and whether the job had ended
    (``ended``) and the client has everything already (``caught_up``: nothing to send, no more to come)."""

    job_id: str
    ended: bool
    caught_up: bool


def open_job_stream(session: Session, tenant_id: str, job_id: str, after_seq: int) -> JobStreamStart:
    """Check a job stream may start: NotFound for no such job (or another tenant's)."""
    job = jobs.get_job(session, tenant_id, job_id)
    ended = JobState(job.state).is_final
    caught_up = ended and not repo.job_events(session, job.id, after_seq=after_seq, limit=1)
    return JobStreamStart(job_id=job.id, ended=ended, caught_up=caught_up)


def _job_events(job_id: str, after_seq: int) -> list[StreamEvent]:
    with autocommit_scope() as session:
        rows = repo.job_events(session, job_id, after_seq=after_seq, limit=BACKLOG_PAGE)
        return [stream_event(row) for row in rows]


async def _job_backlog(job_id: str, after_seq: int) -> AsyncGenerator[StreamEvent]:
    while True:
        rows = await anyio.to_thread.run_sync(_job_events, job_id, after_seq)
        for row in rows:
            yield row
        if len(rows) < BACKLOG_PAGE:
            return
        after_seq = rows[-1].seq or after_seq


async def job_stream(
    start: JobStreamStart, after_seq: int, settings: Settings
) -> AsyncGenerator[StreamEvent]:
    """The job's events after ``after_seq`` in sequence order, each once; ends after the job's final event
    (or, for a job that had ended when the stream opened, after the replay)."""
    last = after_seq
    async with get_hub(settings).job_subscription(start.job_id) as subscription:
        while True:
            if subscription.stale:
                subscription.stale = False
                ended = False
                async with contextlib.aclosing(_job_backlog(start.job_id, last)) as backlog:
                    async for event in backlog:
                        yield event
                        last, ended = event.seq or last, event.is_final
                if ended or start.ended:
                    return
                continue
            await subscription.wait()
            live = subscription.pop()
            if live is None or live.seq is None or live.seq <= last:
                continue  # the database read had it already
            if live.seq > last + 1:
                # One in between has not come through here (an id given up on): read it from the database.
                subscription.stale = True
                continue
            yield live
            last = live.seq
            if live.is_final:
                return


# -- a tenant's stream -------------------------------------------------------------------------------


def _tenant_events(
    tenant_id: str, types: frozenset[str] | None, after_id: int, up_to: int
) -> list[StreamEvent]:
    with autocommit_scope() as session:
        rows = repo.tenant_events(
            session,
            tenant_id,
            after_id=after_id,
            types=sorted(types) if types else None,
            limit=BACKLOG_PAGE,
            up_to=up_to,
        )
        return [stream_event(row) for row in rows]


async def tenant_stream(
    tenant_id: str, types: frozenset[str] | None, after_id: int | None, settings: Settings
) -> AsyncGenerator[StreamEvent]:
    """The tenant's events (of ``types`` only, if given) in global id order, each once: those after
    ``after_id`` first (None: only events from now on), then live. Never ends by itself."""
    async with get_hub(settings).tenant_subscription(tenant_id, types) as subscription:
        if after_id is None:
            # From now on: past the newest event there is (the hub may start below it, see START_LOOKBACK).
            after_id = max(subscription.bound, await anyio.to_thread.run_sync(_newest_id))
        last = after_id
        while True:
            if subscription.stale:
                subscription.stale = False
                bound = subscription.bound
                while last < bound:
                    rows = await anyio.to_thread.run_sync(_tenant_events, tenant_id, types, last, bound)
                    for row in rows:
                        yield row
                    last = rows[-1].id if len(rows) == BACKLOG_PAGE else bound
                continue
            await subscription.wait()
            event = subscription.pop()
            if event is None or event.id <= last:
                continue
            yield event
            last = event.id
