"""Event streams among requests: only their GETs (and the job socket) take ``?token=``; the admission limit
counts a stream until its response starts; the server log never keeps a token from a URL."""

from __future__ import annotations

import asyncio
import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.middleware import AdmissionMiddleware
from api.stream_auth import _RedactTokens, is_event_stream, stream_token_of


def _scope(path: str, query: bytes = b"", method: str = "GET", kind: str = "http") -> Scope:
    scope: Scope = {"type": kind, "path": path, "query_string": query, "headers": [], "state": {}}
    if kind == "http":
        scope["method"] = method
    return scope


@pytest.mark.parametrize(
    ("scope", "token"),
    [
        (_scope("/api/v1/events", b"token=abc"), "abc"),
        (_scope("/api/v1/jobs/j1/events", b"types=x&token=abc&last_event_id=3"), "abc"),
        (_scope("/api/v1/jobs/j1/ws", b"token=abc", kind="websocket"), "abc"),
        (_scope("/api/v1/jobs/j1/events"), None),
        # Nowhere else, not even on the job's other routes or with another method.
        (_scope("/api/v1/jobs/j1", b"token=abc"), None),
        (_scope("/api/v1/jobs/j1/result", b"token=abc"), None),
        (_scope("/api/v1/events", b"token=abc", method="POST"), None),
        (_scope("/api/v1/stream-tokens", b"token=abc", method="POST"), None),
        (_scope("/api/v1/jobs/j1/events/x", b"token=abc"), None),
        (_scope("/api/v1/jobs/j1/ws", b"token=abc"), None),  # an HTTP GET of the socket's path
    ],
)
def test_only_event_streams_take_a_token_from_the_url(scope: Scope, token: str | None) -> None:
    assert stream_token_of(scope) == token


def test_the_sse_paths_are_event_streams() -> None:
    assert is_event_stream(_scope("/api/v1/events"))
    assert is_event_stream(_scope("/api/v1/jobs/j1/events"))
    assert not is_event_stream(_scope("/api/v1/jobs/j1/ws", kind="websocket"))
    assert not is_event_stream(_scope("/api/v1/jobs/j1"))
    assert not is_event_stream(_scope("/api/v1/events", method="DELETE"))


def _admission_run(path: str) -> tuple[int, int, list[int]]:
    """Admission limit 1: one request whose response has started and stays open, then a second one.
    Returns (in flight while the first is open, after it ended, statuses the second request got)."""
    started, release = asyncio.Event(), asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == path and not started.is_set():
            await send({"type": "http.response.start", "status": 200, "headers": []})
            started.set()
            await release.wait()
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def main() -> tuple[int, int, list[int]]:
        admission = AdmissionMiddleware(app, limit=1)
        statuses: list[int] = []

        async def collect(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def ignore(message: Message) -> None:
            pass

        first = asyncio.ensure_future(admission(_scope(path), receive, ignore))
        await started.wait()
        during = admission.in_flight
        await admission(_scope("/api/v1/usage"), receive, collect)
        release.set()
        await first
        return during, admission.in_flight, statuses

    return asyncio.run(main())


def test_an_open_event_stream_does_not_hold_an_admission_slot() -> None:
    assert _admission_run("/api/v1/jobs/j1/events") == (0, 0, [200])


def test_any_other_open_response_does() -> None:
    assert _admission_run("/api/v1/jobs/j1/result") == (1, 0, [503])


def test_tokens_in_urls_are_masked_in_the_server_log() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/api/v1/jobs/j1/ws?last_seq=2&token=pm_live_secret"),
        None,
    )
    assert _RedactTokens().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "WebSocket /api/v1/jobs/j1/ws?last_seq=2&token=***" [accepted]'
    )
