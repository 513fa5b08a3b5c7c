"""Events to NATS, the whole path, embedded and distributed: a job submitted over HTTP, its events written to
the outbox, relayed by the webhooks worker and published to a real nats-server, where a subscriber gets
each on its subject (pagemill.job.<type>, pagemill.batch.completed) with the Nats-Msg-Id header and a
CloudEvents body; every event of the job arrives (at least once: copies share their id), numbered with no
gap."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from cloudevents.core.formats.json import JSONFormat
from nats.aio.msg import Msg

from tests.e2e.stack import Stack, running_stack
from tests.support import documents, services
from tests.support.services import NatsServer, S3Server, distributed_env, embedded_env

pytestmark = pytest.mark.e2e


class Subscriber:
    """A NATS subscriber on ``subject`` in a thread of its own, collecting every message."""

    def __init__(self, url: str, subject: str) -> None:
        self.messages: list[Msg] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(url, subject), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the NATS subscriber did not start"

    def _run(self, url: str, subject: str) -> None:
        self._loop.run_until_complete(self._main(url, subject))

    async def _main(self, url: str, subject: str) -> None:
        self._stop = asyncio.Event()
        client = await nats.connect(url)

        async def received(msg: Msg) -> None:
            with self._lock:
                self.messages.append(msg)

        await client.subscribe(subject, cb=received)
        await client.flush()
        self._ready.set()
        await self._stop.wait()
        await client.close()

    def snapshot(self) -> list[Msg]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def nats_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, NatsServer]]:
    """A running Pagemill publishing its events to a throwaway NATS server (its own database, Redis and
    bucket in distributed mode: its relay must see no other stack's events)."""
    own = contextlib.ExitStack()
    with own:
        server = own.enter_context(services.nats_server())
        if request.param == "embedded":
            env = embedded_env(tmp_path_factory.mktemp("nats-embedded"))
        else:
            s3: S3Server = request.getfixturevalue("s3")
            pg_url = own.enter_context(services.postgres_url())
            redis = own.enter_context(services.redis_server())
            env = distributed_env(pg_url, redis.url, s3, bucket="pagemill-nats")
        env["PAGEMILL_EVENTS__NATS_URL"] = server.url
        stack = own.enter_context(running_stack(env, webhooks=True))
        yield stack, server


def cloud_events(messages: list[Msg], job_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The job's events received, by CloudEvents id (deduplicated): (subject, attributes and data)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for msg in messages:
        event = JSONFormat().read(None, msg.data)
        if event.get_subject() != job_id:
            continue
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event.get_id()
        body = {**event.get_attributes(), "data": event.get_data()}
        found[event.get_id()] = (msg.subject, body)
    return found


def test_a_jobs_events_arrive_on_their_nats_subjects(
    nats_stack: tuple[Stack, NatsServer], docs: Path
) -> None:
    stack, server = nats_stack
    subscriber = Subscriber(server.url, "pagemill.>")
    try:
        job_id = stack.submit_ok(documents.make_text_pdf(docs / "three.pdf", ["one", "two", "three"]))
        assert stack.wait(job_id)["state"] == "succeeded"

        def arrived() -> dict[str, tuple[str, dict[str, Any]]]:
            return cloud_events(subscriber.snapshot(), job_id)

        deadline = time.monotonic() + 60
        while not any(body["type"] == "com.pagemill.job.succeeded" for _, body in arrived().values()):
            assert time.monotonic() < deadline, (
                f"job.succeeded never reached NATS; got {sorted(b['type'] for _, b in arrived().values())}"
                f"\n{stack.webhook_worker.log_tail(40) if stack.webhook_worker else ''}"
            )
            time.sleep(0.1)
        events = sorted(arrived().values(), key=lambda item: item[1]["sequence"])
    finally:
        subscriber.close()

    sequences = [body["sequence"] for _, body in events]
    assert sequences == list(range(1, len(events) + 1)), sequences  # every event of the job, no gap
    types = [body["type"].removeprefix("com.pagemill.") for _, body in events]
    assert types[0] == "job.queued" and types[1] == "job.started" and types[-1] == "job.succeeded", types
    assert set(types) <= {"job.queued", "job.started", "job.progress", "job.succeeded"}, types
    for subject, body in events:
        assert subject == "pagemill." + body["type"].removeprefix("com.pagemill.")
        assert body["source"] == f"/api/v1/jobs/{job_id}" and body["specversion"] == "1.0"
        assert body["data"]["job_id"] == job_id
    assert events[-1][1]["data"]["pages"] == {"total": 3, "done": 3, "failed": 0}


def test_a_batch_completes_on_its_subject(nats_stack: tuple[Stack, NatsServer], docs: Path) -> None:
    stack, server = nats_stack
    subscriber = Subscriber(server.url, "pagemill.batch.>")
    try:
        paths = [documents.make_text_pdf(docs / f"b{n}.pdf", [f"batch item {n}"]) for n in range(2)]
        handles = [path.open("rb") for path in paths]
        try:
            parts = [("files", (path.name, handle)) for path, handle in zip(paths, handles, strict=True)]
            response = stack.client.post("/api/v1/batches", files=parts)
        finally:
            for handle in handles:
                handle.close()
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while not subscriber.snapshot():
            assert time.monotonic() < deadline, "batch.completed never reached NATS"
            time.sleep(0.1)
        (msg, *more) = subscriber.snapshot()
    finally:
        subscriber.close()
    assert not more or all(m.headers == msg.headers for m in more)  # at least once: copies carry one id
    assert msg.subject == "pagemill.batch.completed"
    event = JSONFormat().read(None, msg.data)
    assert msg.headers == {"Nats-Msg-Id": event.get_id()}
    assert event.get_type() == "com.pagemill.batch.completed"
    assert event.get_source() == f"/api/v1/batches/{batch_id}"
    data = event.get_data()
    assert isinstance(data, dict) and data["batch_id"] == batch_id and data["jobs"] == {"succeeded": 2}
