"""The gap-aware poller: ids that commit out of order are never skipped by tenant streams, a job's events
are never held behind another job's gap, one poll serves every stream, and a slow stream catches up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from pagemill.events import hub as hub_module
from pagemill.events.hub import EventHub, Sequencer, StreamEvent, Subscription


@pytest.fixture
def anyio_backend() -> str:
    """The hub runs on asyncio (uvicorn's loop)."""
    return "asyncio"


def _event(event_id: int, job: str = "a", seq: int | None = None, type_: str = "job.progress") -> StreamEvent:
    return StreamEvent(
        id=event_id, seq=seq or event_id, tenant_id="t", job_id=job, type=type_, body=f'{{"n":{event_id}}}'
    )


def _ids(events: Sequence[StreamEvent]) -> list[int]:
    return [event.id for event in events]


def test_contiguous_ids_are_released_at_once() -> None:
    sequencer = Sequencer(start=10, gap_wait_s=3)
    fresh, released = sequencer.offer([_event(12), _event(11), _event(13)], now=0)
    assert _ids(fresh) == [11, 12, 13]
    assert _ids(released) == [11, 12, 13]
    assert sequencer.watermark == 13 and sequencer.missing_ids() == []


def test_a_late_commit_is_waited_for_and_delivered_in_order() -> None:
    sequencer = Sequencer(start=10, gap_wait_s=3)
    fresh, released = sequencer.offer([_event(11), _event(13), _event(14)], now=0)
    # Job streams get 13 and 14 at once; tenant streams only up to the gap.
    assert _ids(fresh) == [11, 13, 14]
    assert _ids(released) == [11]
    assert sequencer.missing_ids() == [12]
    assert sequencer.watermark == 11
    # 12 commits later: the next poll finds it (it is asked for by id) and everything is released in order.
    fresh, released = sequencer.offer([_event(12), _event(15)], now=1)
    assert _ids(fresh) == [12, 15]
    assert _ids(released) == [12, 13, 14, 15]
    assert sequencer.watermark == 15 and sequencer.missing_ids() == []


def test_a_rolled_back_id_is_given_up_after_the_wait() -> None:
    sequencer = Sequencer(start=0, gap_wait_s=3)
    sequencer.offer([_event(1), _event(3)], now=0)
    fresh, released = sequencer.offer([], now=2.9)
    assert fresh == [] and released == []
    fresh, released = sequencer.offer([_event(4)], now=3.0)
    assert _ids(released) == [3, 4]
    assert sequencer.watermark == 4 and sequencer.missing_ids() == []


def test_events_seen_twice_are_offered_once() -> None:
    sequencer = Sequencer(start=0, gap_wait_s=3)
    sequencer.offer([_event(1), _event(3)], now=0)
    # 3 is read again (a poll that asks for 2 and gets ids after 1 again): not fresh twice.
    fresh, released = sequencer.offer([_event(3), _event(1)], now=0.5)
    assert fresh == [] and released == []


def test_an_id_given_up_is_never_released_behind_later_ones() -> None:
    # A job's stream does not depend on it: it notices the hole in its seq and reads the database.
    sequencer = Sequencer(start=0, gap_wait_s=1)
    sequencer.offer([_event(1), _event(3)], now=0)
    sequencer.offer([], now=2)  # 2 given up
    assert sequencer.watermark == 3
    fresh, released = sequencer.offer([_event(2)], now=2.5)
    assert fresh == [] and released == []


def test_only_a_bounded_number_of_missing_ids_is_tracked() -> None:
    sequencer = Sequencer(start=0, gap_wait_s=3)
    sequencer.offer([_event(1), _event(hub_module.MAX_MISSING + 100)], now=0)
    missing = sequencer.missing_ids()
    assert len(missing) == hub_module.MISSING_QUERY_MAX
    assert missing[0] == 100  # the oldest of the tracked (newest) ids
    assert sequencer.watermark == 99


def test_a_full_queue_is_dropped_and_the_stream_marked_to_catch_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_MAX", 3)
    subscription = Subscription(job_id=None, tenant_id="t", types=None)
    subscription.stale = False
    for n in range(1, 4):
        subscription.push(_event(n))
    assert not subscription.stale
    subscription.push(_event(4))
    assert subscription.stale and subscription.bound == 4 and subscription.pop() is None
    subscription.push(_event(5))
    assert _ids([e for e in [subscription.pop()] if e]) == [5]


class FakeOutbox:
    """The outbox as the hub reads it: committed events by id, and every read it was asked for."""

    def __init__(self) -> None:
        self.committed: dict[int, StreamEvent] = {}
        self.reads: list[tuple[int, list[int]]] = []

    def commit(self, *events: StreamEvent) -> None:
        for event in events:
            self.committed[event.id] = event

    def read(self, after_id: int, missing: Sequence[int], limit: int) -> list[StreamEvent]:
        self.reads.append((after_id, list(missing)))
        newer = sorted(i for i in self.committed if i > after_id)[:limit]
        found = [i for i in missing if i in self.committed]
        return [self.committed[i] for i in newer + found]

    def start_after(self) -> int:
        return max(self.committed, default=0)


async def _next(subscription: Subscription, timeout: float = 2) -> StreamEvent:
    async with asyncio.timeout(timeout):
        while True:
            await subscription.wait()
            event = subscription.pop()
            if event is not None:
                return event
            subscription.stale = False


@pytest.mark.anyio
async def test_one_poll_serves_every_stream_and_job_streams_do_not_wait_for_gaps() -> None:
    outbox = FakeOutbox()
    outbox.commit(_event(1, "a"))
    hub = EventHub(outbox.read, outbox.start_after, poll_s=0.01, gap_wait_s=60)
    async with (
        hub.job_subscription("b") as job_b,
        hub.job_subscription("b") as job_b_too,
        hub.tenant_subscription("t") as tenant,
        hub.tenant_subscription("t", frozenset({"job.succeeded"})) as finals,
    ):
        assert tenant.bound == 1 and hub.running
        # id 2 (job a) is taken but not committed yet; 3 and 4 (job b) are committed.
        outbox.commit(_event(3, "b", seq=1), _event(4, "b", seq=2, type_="job.succeeded"))
        assert [(await _next(job_b)).id, (await _next(job_b)).id] == [3, 4]
        assert (await _next(job_b_too)).id == 3
        await asyncio.sleep(0.1)
        assert tenant.pop() is None  # held behind the missing 2
        assert any(2 in missing for _after, missing in outbox.reads)
        outbox.commit(_event(2, "a"))
        assert [(await _next(tenant)).id for _ in range(3)] == [2, 3, 4]
        assert (await _next(finals)).id == 4
        polls = len(outbox.reads)
        await asyncio.sleep(0.1)
        # About one read per interval for all four streams, not one per stream.
        assert len(outbox.reads) - polls <= 15
    assert not hub.running


@pytest.mark.anyio
async def test_the_poller_stops_with_its_last_stream_and_starts_again() -> None:
    outbox = FakeOutbox()
    hub = EventHub(outbox.read, outbox.start_after, poll_s=0.01, gap_wait_s=1)
    async with hub.job_subscription("a"):
        assert hub.running
    assert not hub.running
    reads = len(outbox.reads)
    await asyncio.sleep(0.05)
    assert len(outbox.reads) == reads
    outbox.commit(_event(1, "a"))
    async with hub.job_subscription("a") as again:
        outbox.commit(_event(2, "a"))
        assert (await _next(again)).id == 2  # starts after the newest event at its start


@pytest.mark.anyio
async def test_a_failing_read_keeps_streams_open_until_the_database_answers() -> None:
    outbox = FakeOutbox()
    failures = [RuntimeError("database away")] * 3

    def flaky(after_id: int, missing: Sequence[int], limit: int) -> list[StreamEvent]:
        if failures:
            raise failures.pop()
        return outbox.read(after_id, missing, limit)

    hub = EventHub(flaky, outbox.start_after, poll_s=0.005, gap_wait_s=1)
    async with hub.job_subscription("a") as stream:
        outbox.commit(_event(1, "a"))
        assert (await _next(stream, timeout=5)).id == 1
        assert failures == []
