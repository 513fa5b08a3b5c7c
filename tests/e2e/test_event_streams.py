"""Live progress over SSE and WebSocket, in both modes, with real API processes and real clients: a client
that reconnects to another API process continues with every event exactly once and in order (checked
against the events table), streams end after the job's final event, idle streams send heartbeats, and only
the tenant's own callers get in (headers or short-lived stream tokens, never an API key in the URL)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pagemill.events import stream_tokens
from pagemill.tenancy.principal import Principal
from tests.e2e.event_stack import HEARTBEAT_S, StreamStack
from tests.e2e.event_stack import streams as streams  # the module's fixture (one stack per mode)
from tests.e2e.test_api_examples import _example, _shape
from tests.support import documents
from tests.support.event_streams import SocketRead, SseEvent, SseRead, read_socket, read_stream
from tests.support.services import pagemill_api

pytestmark = pytest.mark.e2e

SCAN_PAGES = [f"Page number {n} of a streamed scan" for n in range(1, 9)]


@pytest.fixture(scope="module")
def other_tenant(streams: StreamStack) -> str:
    """An API key of another tenant."""
    return str(streams.stack.create_key("streams-other", "standard")["secret"])


def _seqs(events: list[SseEvent]) -> list[int]:
    return [int(event.id or 0) for event in events]


def _pages(read: SseRead) -> int:
    return sum(event.event == "job.page_completed" for event in read.events)


def _as_stored(events: list[SseEvent]) -> list[tuple[int, str, str]]:
    return [(int(event.id or 0), event.event or "", event.body["id"]) for event in events]


def test_sse_resumed_on_another_api_process_has_every_event_once(streams: StreamStack, docs: Path) -> None:
    stack = streams.stack
    job_id = stack.submit_ok(documents.make_scanned_pdf(docs / "scan.pdf", SCAN_PAGES))
    path = f"/api/v1/jobs/{job_id}/events"
    with pagemill_api(stack.env) as (_api, second_url), stack.client_for(stack.key, second_url) as second:
        first = read_stream(stack.client, path, until=lambda read: _pages(read) >= 2)
        assert not first.closed_by_server
        # Still running: the second process replays what the first did not send, then goes on live.
        assert stack.job(job_id)["state"] == "running"
        rest = read_stream(second, path, headers={"Last-Event-ID": first.events[-1].id or ""})
    assert rest.closed_by_server and rest.events, rest
    events = first.events + rest.events
    assert _seqs(events) == list(range(1, len(events) + 1))
    assert events[0].event == "job.queued" and events[-1].event == "job.succeeded"
    assert sum(event.event == "job.page_completed" for event in events) == len(SCAN_PAGES)
    assert _as_stored(events) == streams.stored_events(job_id)
    body = events[-1].body
    assert body["type"] == "com.pagemill.job.succeeded" and body["source"] == f"/api/v1/jobs/{job_id}"
    assert body["sequence"] == len(events) and body["data"]["state"] == "succeeded"

    # A full replay now is the same stream, byte for byte, and closes by itself.
    replay = read_stream(stack.client, path)
    assert replay.closed_by_server
    assert [(e.id, e.event, e.data) for e in replay.events] == [(e.id, e.event, e.data) for e in events]
    # ?last_event_id= for clients that cannot send the header; the header wins over it.
    tail = read_stream(stack.client, path, params={"last_event_id": str(len(events) - 2)})
    assert _seqs(tail.events) == [len(events) - 1, len(events)] and tail.closed_by_server
    both = read_stream(
        stack.client, path, params={"last_event_id": "0"}, headers={"Last-Event-ID": str(len(events) - 1)}
    )
    assert _seqs(both.events) == [len(events)]
    # Resumed after the final event: 204, which tells an EventSource to stop reconnecting.
    assert stack.client.get(path, headers={"Last-Event-ID": str(len(events))}).status_code == 204


def test_websocket_resumes_on_another_api_process_after_a_restart(streams: StreamStack, docs: Path) -> None:
    stack = streams.stack
    job_id = stack.submit_ok(documents.make_scanned_pdf(docs / "scan.pdf", SCAN_PAGES))
    auth = {"Authorization": f"Bearer {stack.key}"}
    with pagemill_api(stack.env) as (api, second_url):

        def restart_after_a_page(read: SocketRead) -> bool:
            if any(m["event"]["type"] == "com.pagemill.job.page_completed" for m in read.messages):
                api.stop()  # SIGTERM: uvicorn closes open WebSockets with 1012 (service restart)
            return False

        first = read_socket(
            streams.url(f"/api/v1/jobs/{job_id}/ws", second_url),
            headers=auth,
            first_message={"last_seq": 0},
            until=restart_after_a_page,
        )
    assert first.close_code == 1012, first
    assert stack.job(job_id)["state"] == "running"
    last_seq = first.messages[-1]["seq"]
    rest = read_socket(
        streams.url(f"/api/v1/jobs/{job_id}/ws"), headers=auth, first_message={"last_seq": last_seq}
    )
    assert rest.close_code == 1000, rest
    messages = first.messages + rest.messages
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert messages[-1]["event"]["type"] == "com.pagemill.job.succeeded"
    stored = [
        (m["seq"], m["event"]["type"].removeprefix("com.pagemill."), m["event"]["id"]) for m in messages
    ]
    assert stored == streams.stored_events(job_id)
    # ?last_seq= works as the first message does; a job with nothing left closes 1000 at once.
    tail = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws?last_seq={last_seq}"), headers=auth)
    assert tail.messages == rest.messages and tail.close_code == 1000
    done = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws?last_seq={len(messages)}"), headers=auth)
    assert done.messages == [] and done.close_code == 1000


def test_a_cancelled_jobs_stream_ends_with_job_cancelled(streams: StreamStack, docs: Path) -> None:
    stack = streams.stack
    job_id = stack.submit_ok(documents.make_scanned_pdf(docs / "long.pdf", SCAN_PAGES))
    cancels: list[int] = []

    def cancel_after_a_page(read: SseRead) -> bool:
        if not cancels and _pages(read) >= 1:
            cancels.append(stack.client.delete(f"/api/v1/jobs/{job_id}").status_code)
        return False

    read = read_stream(stack.client, f"/api/v1/jobs/{job_id}/events", until=cancel_after_a_page)
    assert cancels == [202]
    assert read.closed_by_server
    types = [event.event for event in read.events]
    assert types[-1] == "job.cancelled" and "job.succeeded" not in types
    assert _seqs(read.events) == list(range(1, len(types) + 1))
    assert read.events[-1].body["data"]["state"] == "cancelled"
    assert _as_stored(read.events) == streams.stored_events(job_id)


def test_a_finished_job_replays_and_closes(streams: StreamStack, docs: Path) -> None:
    stack = streams.stack
    job_id = stack.submit_ok(documents.make_text_pdf(docs / "done.pdf", ["one", "two"]))
    assert stack.wait(job_id)["state"] == "succeeded"
    stored = streams.stored_events(job_id)
    read = read_stream(stack.client, f"/api/v1/jobs/{job_id}/events")
    assert read.closed_by_server and _as_stored(read.events) == stored
    assert [t for _seq, t, _id in stored][:2] == ["job.queued", "job.started"]
    assert stored[-1][1] == "job.succeeded"
    # docs/api.md (Events) shows a job.succeeded event: it has the real event's shape.
    succeeded = read.events[-1].body
    assert _shape(succeeded) == _shape(json.loads(_example("## Events", "json")))
    socket = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws?last_seq=0"), headers=_bearer(stack.key))
    assert [(m["seq"], m["event"]["id"]) for m in socket.messages] == [(s, i) for s, _t, i in stored]
    assert socket.close_code == 1000
    # Without ?last_seq= and without a first message, the socket starts from the first event too.
    quiet = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws"), headers=_bearer(stack.key))
    assert len(quiet.messages) == len(stored) and quiet.close_code == 1000


def test_idle_streams_send_heartbeats(streams: StreamStack) -> None:
    stack = streams.stack
    key = str(stack.create_key("streams-idle", "standard")["secret"])
    started = time.monotonic()
    with stack.client_for(key) as client:
        read = read_stream(client, "/api/v1/events", until=lambda r: len(r.comments) >= 3, timeout=30)
    assert read.events == [] and read.comments == ["heartbeat"] * 3
    # Three comments, one every HEARTBEAT_S: not sent all at once.
    assert time.monotonic() - started >= 2 * HEARTBEAT_S


def test_the_tenant_stream_filters_by_type_and_resumes(streams: StreamStack, docs: Path) -> None:
    stack = streams.stack
    tenant = f"streams-dash-{streams.mode}"
    key = str(stack.create_key(tenant, "enterprise")["secret"])
    wanted = "job.succeeded,job.failed"
    live: list[SseRead] = []
    opened = threading.Event()

    def watch() -> None:
        with stack.client_for(key) as client:

            def two_finals(read: SseRead) -> bool:
                opened.set()  # the first heartbeat: the stream is open
                return len(read.events) >= 2

            live.append(read_stream(client, "/api/v1/events", params={"types": wanted}, until=two_finals))

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert opened.wait(30)
    with stack.client_for(key) as client:
        good = _submit(client, documents.make_text_pdf(docs / "good.pdf", ["dashboard"]))
        bad = _submit(client, documents.make_encrypted_pdf(docs / "locked.pdf", "pw"))
    watcher.join(120)
    assert not watcher.is_alive() and live
    events = live[0].events
    assert sorted((e.event or "", e.body["subject"]) for e in events) == sorted(
        [("job.succeeded", good), ("job.failed", bad)]
    )
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(ids)
    # Resumed from before the first: the same two events again, by global id, and no other type.
    stored = streams.stored_events(good) + streams.stored_events(bad)
    with stack.client_for(key) as client:
        again = read_stream(
            client,
            "/api/v1/events",
            params={"types": wanted},
            headers={"Last-Event-ID": str(ids[0] - 1)},
            until=lambda r: len(r.events) >= 2,
        )
        everything = read_stream(
            client,
            "/api/v1/events",
            headers={"Last-Event-ID": "0"},
            until=lambda r: len(r.events) >= len(stored),
        )
        # Another tenant's stream sees none of it.
        other = read_stream(
            stack.client,
            "/api/v1/events",
            params={"last_event_id": "0", "types": wanted},
            until=lambda r: len(r.comments) >= 2,
        )
        bad_filter = client.get("/api/v1/events", params={"types": "job.nope"})
    assert [e.data for e in again.events] == [e.data for e in events]
    assert sorted(e.body["id"] for e in everything.events) == sorted(i for _s, _t, i in stored)
    assert not {e.body["subject"] for e in other.events} & {good, bad}
    assert bad_filter.status_code == 422 and bad_filter.json()["error"]["code"] == "VALIDATION_ERROR"


def test_only_the_tenants_callers_open_its_streams(
    streams: StreamStack, docs: Path, other_tenant: str
) -> None:
    stack = streams.stack
    job_id = stack.submit_ok(documents.make_text_pdf(docs / "mine.pdf", ["private"]))
    stack.wait(job_id)
    path = f"/api/v1/jobs/{job_id}/events"
    anonymous = httpx.Client(base_url=stack.base_url, timeout=30)
    with anonymous, stack.client_for(other_tenant) as intruder:
        assert _error(anonymous.get(path)) == (401, "UNAUTHORIZED")
        assert _error(anonymous.get("/api/v1/events")) == (401, "UNAUTHORIZED")
        # The API key itself in the URL is refused, even a valid one.
        refused = anonymous.get(path, params={"token": stack.key})
        assert _error(refused) == (401, "UNAUTHORIZED")
        assert refused.json()["error"]["details"]["reason"] == "key_in_query"
        assert _error(intruder.get(path)) == (404, "NOT_FOUND")
        assert _error(intruder.post("/api/v1/stream-tokens", json={"job_id": job_id})) == (404, "NOT_FOUND")

        # A stream token for the job opens its SSE stream and its socket, nothing else.
        made = stack.client.post("/api/v1/stream-tokens", json={"job_id": job_id})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        assert made.json()["job_id"] == job_id and made.json()["expires_in_s"] == 300
        read = read_stream(anonymous, path, params={"token": token})
        assert read.status == 200 and read.closed_by_server and read.events[-1].event == "job.succeeded"
        socket = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws?last_seq=0&token={token}"))
        assert socket.close_code == 1000 and len(socket.messages) == len(read.events)
        assert _error(anonymous.get("/api/v1/events", params={"token": token})) == (403, "FORBIDDEN")
        other_job = intruder.post(
            "/api/v1/documents",
            files={"file": ("x.pdf", documents.make_text_pdf(docs / "x.pdf", ["x"]).read_bytes())},
        ).json()["id"]
        elsewhere = anonymous.get(f"/api/v1/jobs/{other_job}/events", params={"token": token})
        assert _error(elsewhere) == (403, "FORBIDDEN")

        # A tenant token of another tenant does not open this tenant's job.
        theirs = intruder.post("/api/v1/stream-tokens").json()["token"]
        assert _error(anonymous.get(path, params={"token": theirs})) == (404, "NOT_FOUND")
        closed = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws?token={theirs}"))
        assert (closed.close_code, (closed.close_reason or "").split(":")[0]) == (1008, "NOT_FOUND")

        # Expired (signed with the server's own key) and forged tokens are refused.
        principal = Principal(tenant_id="e2e", tier="enterprise", subject="key:test", rate_key="test")
        expired = stream_tokens.issue(streams.signing, principal, job_id, now=time.time() - 3600).token
        fresh = stream_tokens.issue(streams.signing, principal, job_id).token
        assert read_stream(anonymous, path, params={"token": fresh}).status == 200  # the key is the server's
        header, payload, _signature = fresh.split(".")
        forged = f"{header}.{payload}.{'A' * 43}"
        for bad, reason in ((expired, "expired"), (forged, "invalid_stream_token")):
            response = anonymous.get(path, params={"token": bad})
            assert _error(response) == (401, "UNAUTHORIZED")
            assert response.json()["error"]["details"]["reason"] == reason
            socket = read_socket(streams.url(f"/api/v1/jobs/{job_id}/ws?token={bad}"))
            assert (socket.close_code, (socket.close_reason or "").split(":")[0]) == (1008, "UNAUTHORIZED")

    for url in (
        streams.url(f"/api/v1/jobs/{job_id}/ws"),
        streams.url(f"/api/v1/jobs/{job_id}/ws?token={stack.key}"),
    ):
        socket = read_socket(url)
        assert (socket.close_code, (socket.close_reason or "").split(":")[0]) == (1008, "UNAUTHORIZED"), (
            socket
        )
    unknown = read_socket(streams.url("/api/v1/jobs/no-such-job/ws"), headers=_bearer(stack.key))
    assert (unknown.close_code, (unknown.close_reason or "").split(":")[0]) == (1008, "NOT_FOUND")
    assert (
        read_socket(
            streams.url(f"/api/v1/jobs/{job_id}/ws"),
            headers=_bearer(stack.key),
            first_message={"last_seq": -1},
        ).close_code
        == 1008
    )


def test_many_open_streams_all_get_the_event_and_hold_no_admission_slot(
    streams: StreamStack, docs: Path
) -> None:
    stack = streams.stack
    key = str(stack.create_key(f"streams-many-{streams.mode}", "enterprise")["secret"])
    watchers = 12  # three times the admission limit, opened one after the other, all kept open
    reads: list[SseRead] = []
    opened = [threading.Event() for _ in range(watchers)]

    def watch(number: int) -> None:
        def first_final(read: SseRead) -> bool:
            opened[number].set()  # a heartbeat came: the stream is open
            return bool(read.events)

        with stack.client_for(key) as client:
            reads.append(
                read_stream(client, "/api/v1/events", params={"types": "job.succeeded"}, until=first_final)
            )

    threads = [threading.Thread(target=watch, args=(n,)) for n in range(watchers)]
    for number, thread in enumerate(threads):
        thread.start()
        while not opened[number].wait(0.1):
            if not thread.is_alive():  # refused
                pytest.fail(f"stream {number + 1} refused: {[(r.status, r.error) for r in reads]}")
    with stack.client_for(key) as client:
        assert client.get("/api/v1/usage").status_code == 200  # not 503: the streams hold no slot
        job_id = _submit(client, documents.make_text_pdf(docs / "fan-out.pdf", ["everyone"]))
    for thread in threads:
        thread.join(120)
    assert len(reads) == watchers
    assert {(r.events[0].event, r.events[0].body["subject"]) for r in reads} == {("job.succeeded", job_id)}


def test_a_socket_over_the_rate_limit_is_closed_1013(streams: StreamStack, docs: Path) -> None:
    stack = streams.stack
    key = str(stack.create_key(f"streams-free-{streams.mode}", "free")["secret"])
    with stack.client_for(key) as client:
        statuses = [client.get("/api/v1/usage").status_code for _ in range(5)]
        assert statuses == [200] * 5 and client.get("/api/v1/usage").status_code == 429
    closed = read_socket(streams.url("/api/v1/jobs/any/ws"), headers=_bearer(key))
    assert closed.close_code == 1013 and (closed.close_reason or "").startswith("RATE_LIMITED"), closed


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _submit(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        response = client.post("/api/v1/documents", files={"file": (path.name, f)})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _error(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id"}, body
    return response.status_code, str(body["error"]["code"])
