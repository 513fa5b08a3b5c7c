"""One event poller per API process, fanning the outbox out to that process's streams.

Streams read the database, never one process's memory, so a client that reconnects to another replica
continues where it was. Each API process runs ONE poller (started with its first stream, stopped with its
last) that asks for the events after the highest id it has seen, every ``events.stream_poll_s``, and hands
each to the streams that want it: one query per process per interval, however many clients are connected.

Global ids can become visible out of order on Postgres: a transaction that took id 12 may commit after the
one that took id 13 (ids from rolled-back transactions never appear at all). :class:`Sequencer` keeps the
order straight:

* a job's own events commit in sequence order (the writer holds the job row locked to its commit), so they
  go to the job's streams as soon as they are seen, gap or not;
* the tenant-wide streams, which resume on the global id, only get events in contiguous id order: past a
  missing id only once it appears, or after ``events.stream_gap_wait_s`` (an id of a rolled-back
  transaction). A tenant stream's ``Last-Event-ID`` therefore never skips an event that commits late.

A stream that cannot keep up (its queue over :data:`QUEUE_MAX`) is not slowed down by anyone else: its
queue is dropped and the stream reads what it missed from the database, then goes on live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio.to_thread

from pagemill.events.types import FINAL_EVENT_TYPES

log = logging.getLogger(__name__)

QUEUE_MAX = 2000
"""Events a stream may have waiting; past it the stream catches up from the database instead."""
MAX_MISSING = 10_000
"""Missing ids tracked at once (the newest of a larger gap; older ones count as rolled back)."""
MISSING_QUERY_MAX = 1000
"""Missing ids asked for in one poll."""

_FINAL_TYPES = frozenset(str(type_) for type_ in FINAL_EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An event as the streams send it: its ids and its CloudEvents JSON, serialised once for every client."""

    id: int
    seq: int | None
    tenant_id: str
    job_id: str | None
    type: str
    body: str

    @property
    def is_final(self) -> bool:
        """The last event of a job's run (a job stream closes after it)."""
        return self.type in _FINAL_TYPES


class Sequencer:
    """Orders the global event ids one poller sees (no I/O; see the module docstring).

    ``watermark``: every id up to it is delivered to tenant streams or given up as rolled back.
    ``max_seen``: the highest id seen; the next poll asks for the ids after it, plus :meth:`missing_ids`.
    """

    def __init__(self, start: int, gap_wait_s: float) -> None:
        self.watermark = start
        self.max_seen = start
        self.gap_wait_s = gap_wait_s
        self._held: dict[int, StreamEvent] = {}
        self._missing: dict[int, float] = {}

    def missing_ids(self) -> list[int]:
        """Ids below ``max_seen`` not seen yet and still waited for (the oldest first, a bounded number)."""
        return sorted(self._missing)[:MISSING_QUERY_MAX]

    def offer(self, events: Iterable[StreamEvent], now: float) -> tuple[list[StreamEvent], list[StreamEvent]]:
        """Take what a poll read at monotonic time ``now``. Returns the events not seen before (for job
        streams), and the events whose ids are now contiguous (for tenant streams), each in id order."""
        fresh: list[StreamEvent] = []
        for event in sorted(events, key=lambda e: e.id):
            if event.id <= self.watermark or event.id in self._held:
                continue  # seen before
            if event.id > self.max_seen:
                self._note_gap(event.id, now)
                self.max_seen = event.id
            elif self._missing.pop(event.id, None) is None:
                continue  # not waited for (any more): never released behind later ids
            self._held[event.id] = event
            fresh.append(event)
        self._expire(now)
        return fresh, self._release()

    def _note_gap(self, new_id: int, now: float) -> None:
        first = max(self.max_seen + 1, new_id - MAX_MISSING)
        for missing in range(first, new_id):
            self._missing[missing] = now

    def _expire(self, now: float) -> None:
        expired = [i for i, since in self._missing.items() if now - since >= self.gap_wait_s]
        for missing in expired:
            del self._missing[missing]

    def _release(self) -> list[StreamEvent]:
        below = min(self._missing) if self._missing else self.max_seen + 1
        ready = sorted(i for i in self._held if i < below)
        self.watermark = below - 1
        return [self._held.pop(i) for i in ready]


class Subscription:
    """One stream's place at the hub: a queue of events for it, and whether it must catch up from the
    database first (``stale``; a tenant stream then reads up to ``bound``, the events after that come
    through the queue)."""

    def __init__(self, *, job_id: str | None, tenant_id: str | None, types: frozenset[str] | None) -> None:
        self.job_id = job_id
        self.tenant_id = tenant_id
        self.types = types
        self.stale = True
        self.bound = 0
        self._queue: deque[StreamEvent] = deque()
        self._wake = asyncio.Event()

    def wants(self, event: StreamEvent) -> bool:
        """Whether a tenant stream's type filter lets ``event`` through."""
        return self.types is None or event.type in self.types

    def push(self, event: StreamEvent) -> None:
        """Queue ``event``; past :data:`QUEUE_MAX` drop the queue and mark the stream to catch up."""
        if len(self._queue) >= QUEUE_MAX:
            self._queue.clear()
            self.stale = True
            self.bound = event.id
        else:
            self._queue.append(event)
        self._wake.set()

    def pop(self) -> StreamEvent | None:
        """The next queued event, if any."""
        return self._queue.popleft() if self._queue else None

    async def wait(self) -> None:
        """Until an event is queued or the stream must catch up."""
        while not self._queue and not self.stale:
            self._wake.clear()
            await self._wake.wait()


EventReader = Callable[[int, Sequence[int], int], Sequence[StreamEvent]]
"""Blocking: the events with ids above the first argument (at most the third argument of them, in id
order), and those among the ids of the second argument."""
StartReader = Callable[[], int]
"""Blocking: the id a new poller starts after."""


class EventHub:
    """The process's poller and its subscriptions (see the module docstring). Lives on one event loop."""

    def __init__(
        self,
        read: EventReader,
        start_after: StartReader,
        *,
        poll_s: float,
        gap_wait_s: float,
        batch: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._start_after = start_after
        self.poll_s = poll_s
        self.gap_wait_s = gap_wait_s
        self.batch = batch
        self._clock = clock
        self._jobs: dict[str, set[Subscription]] = {}
        self._tenants: dict[str, set[Subscription]] = {}
        self._count = 0
        self._sequencer: Sequencer | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        # Its own thread token: the poll never waits behind requests for the shared pool's threads.
        self._limiter = anyio.CapacityLimiter(1)

    @property
    def running(self) -> bool:
        """Whether the poller runs (it does while any stream is subscribed)."""
        return self._task is not None and not self._task.done()

    @contextlib.asynccontextmanager
    async def job_subscription(self, job_id: str) -> AsyncIterator[Subscription]:
        """Subscribe to one job's events for the duration of the block."""
        subscription = Subscription(job_id=job_id, tenant_id=None, types=None)
        async with self._subscribed(subscription, self._jobs, job_id):
            yield subscription

    @contextlib.asynccontextmanager
    async def tenant_subscription(
        self, tenant_id: str, types: frozenset[str] | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to a tenant's events (of ``types`` only, if given) for the duration of the block.
        The subscription's ``bound`` is where its queue starts: it must read the events up to it itself."""
        subscription = Subscription(job_id=None, tenant_id=tenant_id, types=types)
        async with self._subscribed(subscription, self._tenants, tenant_id):
            yield subscription

    @contextlib.asynccontextmanager
    async def _subscribed(
        self, subscription: Subscription, index: dict[str, set[Subscription]], key: str
    ) -> AsyncIterator[None]:
        sequencer = await self._ensure_started()
        # No await between reading the watermark and registering: no release can fall in between.
        subscription.bound = sequencer.watermark
        index.setdefault(key, set()).add(subscription)
        self._count += 1
        try:
            yield
        finally:
            members = index.get(key)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del index[key]
            self._count -= 1
            if self._count == 0:
                self._stop()

    async def _ensure_started(self) -> Sequencer:
        async with self._starting:
            if self._sequencer is None or not self.running:
                start = await anyio.to_thread.run_sync(self._start_after, limiter=self._limiter)
                self._sequencer = Sequencer(start, self.gap_wait_s)
                self._task = asyncio.get_running_loop().create_task(self._run(self._sequencer))
            return self._sequencer

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task = None
        self._sequencer = None

    async def _run(self, sequencer: Sequencer) -> None:
        failures = 0
        while True:
            try:
                events = await anyio.to_thread.run_sync(
                    self._read, sequencer.max_seen, sequencer.missing_ids(), self.batch, limiter=self._limiter
                )
            except Exception:
                # The database is away: streams stay open (heartbeats go on) and catch up when it is back.
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning("event poll failed (%d in a row)", failures, exc_info=True)
                await asyncio.sleep(min(self.poll_s * 2**failures, 5.0))
                continue
            failures = 0
            newer = sum(event.id > sequencer.max_seen for event in events)
            fresh, released = sequencer.offer(events, self._clock())
            self._dispatch(fresh, released)
            if newer < self.batch:  # else more are waiting: read on at once
                await asyncio.sleep(self.poll_s)

    def _dispatch(self, fresh: Sequence[StreamEvent], released: Sequence[StreamEvent]) -> None:
        for event in fresh:
            if event.job_id is not None:
                for subscription in self._jobs.get(event.job_id, ()):
                    subscription.push(event)
        for event in released:
            for subscription in self._tenants.get(event.tenant_id, ()):
                if subscription.wants(event):
                    subscription.push(event)
