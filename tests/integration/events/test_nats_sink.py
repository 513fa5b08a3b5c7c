"""The NATS sink against a real nats-server (a throwaway one, JetStream on): every event arrives on its
subject, with the Nats-Msg-Id header and a valid CloudEvents body; a republished event is dropped by
JetStream; a server that goes away makes publish raise, and the next call reconnects; a forked child (the
prefork pool) publishes on a connection of its own."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from cloudevents.core.formats.json import JSONFormat
from nats.aio.msg import Msg

from pagemill.errors import DependencyUnavailable
from pagemill.events import nats_sink
from pagemill.events.types import envelope
from pagemill.models import Event
from pagemill.models.base import utcnow
from pagemill.settings import Settings, get_settings
from tests.support import services
from tests.support.services import NatsServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with services.nats_server(jetstream=True) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_connection() -> Iterator[None]:
    # Each test starts without the process's connection of the test before (which may be to another server).
    nats_sink.close()
    yield
    nats_sink.close()


def sink_settings(url: str, prefix: str = "pagemill", timeout_s: float = 2.0) -> Settings:
    base = get_settings()
    events = base.events.model_copy(
        update={"nats_url": url, "nats_subject_prefix": prefix, "nats_timeout_s": timeout_s}
    )
    return base.model_copy(update={"events": events})


def make_event(type_: str, *, seq: int | None = 1, job_id: str | None = None) -> Event:
    """An event as the outbox holds it (a job's, or a batch's when ``seq`` is None)."""
    job = job_id or str(uuid.uuid4())
    batch = str(uuid.uuid4())
    return Event(
        id=1,
        event_id=str(uuid.uuid4()),
        tenant_id="acme",
        job_id=job if seq is not None else None,
        batch_id=None if seq is not None else batch,
        seq=seq,
        type=type_,
        time=utcnow(),
        data={"job_id": job, "tenant_id": "acme", "state": "running", "pages": {"total": 3, "done": 1}},
    )


def a_job_run() -> list[Event]:
    job_id = str(uuid.uuid4())
    types = ["job.queued", "job.started", "job.progress", "job.page_completed", "job.succeeded"]
    return [make_event(type_, seq=n, job_id=job_id) for n, type_ in enumerate(types, 1)] + [
        make_event("batch.completed", seq=None)
    ]


async def receive_while_publishing(
    url: str, subject: str, events: list[Event], settings: Settings, count: int | None = None
) -> list[Msg]:
    """Subscribe to ``subject``, publish ``events`` with the sink (from a thread, as the relay task calls
    it), and collect ``count`` messages (default: one per event)."""
    client = await nats.connect(url)
    try:
        subscription = await client.subscribe(subject)
        await client.flush()
        await asyncio.to_thread(nats_sink.publish, events, settings)
        return [await subscription.next_msg(timeout=5) for _ in range(count or len(events))]
    finally:
        await client.close()


def test_every_event_arrives_on_its_subject_with_its_id_and_cloudevents_body(nats_server: NatsServer) -> None:
    events = a_job_run()
    settings = sink_settings(nats_server.url, prefix="run1")
    received = asyncio.run(receive_while_publishing(nats_server.url, "run1.>", events, settings))

    assert [msg.subject for msg in received] == [
        "run1.job.queued",
        "run1.job.started",
        "run1.job.progress",
        "run1.job.page_completed",
        "run1.job.succeeded",
        "run1.batch.completed",
    ]
    for event, msg in zip(events, received, strict=True):
        assert msg.headers == {"Nats-Msg-Id": event.event_id}
        cloud = JSONFormat().read(None, msg.data)
        assert cloud.get_id() == event.event_id
        assert cloud.get_type() == f"com.pagemill.{event.type}"
        assert cloud.get_specversion() == "1.0"
        assert cloud.get_data() == event.data
        body: dict[str, Any] = envelope(event)
        assert cloud.get_source() == body["source"] and cloud.get_subject() == body["subject"]
        assert cloud.get_extension("sequence") == event.seq


def test_the_default_prefix_gives_pagemill_subjects(nats_server: NatsServer) -> None:
    event = make_event("job.failed")
    settings = sink_settings(nats_server.url)
    (msg,) = asyncio.run(receive_while_publishing(nats_server.url, "pagemill.job.failed", [event], settings))
    assert msg.subject == "pagemill.job.failed"


def test_jetstream_keeps_one_copy_of_an_event_published_twice(nats_server: NatsServer) -> None:
    # At least once: the relay publishes again what it could not mark relayed. A stream on the subjects
    # deduplicates on Nats-Msg-Id.
    events = a_job_run()
    settings = sink_settings(nats_server.url, prefix="dedupe")

    async def run() -> int:
        client = await nats.connect(nats_server.url)
        try:
            stream = client.jetstream()
            await stream.add_stream(name="PAGEMILL_DEDUPE", subjects=["dedupe.>"])
            await asyncio.to_thread(nats_sink.publish, events, settings)
            await asyncio.to_thread(nats_sink.publish, events[2:], settings)
            info = await stream.stream_info("PAGEMILL_DEDUPE")
            return int(info.state.messages)
        finally:
            await client.close()

    assert asyncio.run(run()) == len(events)


def test_nothing_to_publish_needs_no_server() -> None:
    nats_sink.publish([], sink_settings("nats://127.0.0.1:1"))


def test_no_nats_url_is_an_error() -> None:
    with pytest.raises(DependencyUnavailable):
        nats_sink.publish([make_event("job.queued")], get_settings())


def test_a_server_that_went_away_raises_and_the_next_call_reconnects() -> None:
    with services.nats_server() as server:
        settings = sink_settings(server.url, timeout_s=1.0)
        asyncio.run(receive_while_publishing(server.url, "pagemill.>", [make_event("job.queued")], settings))

        server.stop()
        with pytest.raises(DependencyUnavailable) as raised:
            nats_sink.publish([make_event("job.started")], settings)
        assert raised.value.details["dependency"] == "nats"
        with pytest.raises(DependencyUnavailable):  # still down: connecting fails at once
            nats_sink.publish([make_event("job.started")], settings)

        server.start()
        event = make_event("job.succeeded")
        (msg,) = asyncio.run(receive_while_publishing(server.url, "pagemill.>", [event], settings))
        assert msg.headers == {"Nats-Msg-Id": event.event_id}


def _publish_in_child(url: str, event_id: str) -> None:
    event = make_event("job.progress")
    event.event_id = event_id
    nats_sink.publish([event], sink_settings(url))


def test_a_forked_child_publishes_on_a_connection_of_its_own(nats_server: NatsServer) -> None:
    settings = sink_settings(nats_server.url, prefix="fork")
    # The parent holds a connection (and its loop thread) before the fork, as a prefork pool's parent may.
    asyncio.run(receive_while_publishing(nats_server.url, "fork.>", [make_event("job.queued")], settings))
    event_id = str(uuid.uuid4())
    # The child publishes with the default prefix; listen where it publishes.
    msg = asyncio.run(_listen_for_child(nats_server.url, event_id))
    assert msg.headers == {"Nats-Msg-Id": event_id}
    # And the parent's connection still works after the fork.
    asyncio.run(receive_while_publishing(nats_server.url, "fork.>", [make_event("job.succeeded")], settings))


async def _listen_for_child(url: str, event_id: str) -> Msg:
    client = await nats.connect(url)
    try:
        subscription = await client.subscribe("pagemill.job.progress")
        await client.flush()
        child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(url, event_id))
        child.start()
        await asyncio.to_thread(child.join, 30)
        assert child.exitcode == 0
        return await subscription.next_msg(timeout=5)
    finally:
        await client.close()
