"""A small Server-Sent Events reader for the tests: parses the wire format itself (fields, comments, the
blank line that ends an event) so the tests see exactly what a browser's EventSource would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa


@dataclass(frozen=True)
class SseEvent:
    """One event as dispatched: its ``id:``, ``event:`` and (joined) ``data:`` fields."""

    id: str | None
    event: str | None
    data: str

    @property
    def body(self) -> dict[str, Any]:
        """The data as JSON (the CloudEvent)."""
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


@dataclass
class SseRead:
    """What one connection delivered: the HTTP status, the events, the comment lines (heartbeats), and
    whether the server ended the stream (rather than the reader stopping)."""

    status: int
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    closed_by_server: bool = False
    error: dict[str, Any] | None = None


def parse_lines(lines: Iterator[str]) -> Iterator[SseEvent | str]:
    """Events and comments (as ``str``) from the lines of a stream, per the HTML living standard."""
    data: list[str] = []
    event_id: str | None = None
    event_type: str | None = None
    for line in lines:
        if line == "":
            if data or event_type is not None:
                yield SseEvent(id=event_id, event=event_type, data="\n".join(data))
            data, event_id, event_type = [], None, None
            continue
        if line.startswith(":"):
            yield line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "event":
            event_type = value


def read_stream(
    client: httpx.Client,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    until: Callable[[SseRead], bool] | None = None,
    timeout: float = 120.0,
) -> SseRead:
    """GET an SSE stream and read it until the server closes it, or ``until`` says stop (checked after every
    event and comment), or ``timeout`` passes (an AssertionError)."""
    deadline = time.monotonic() + timeout
    with client.stream("GET", path, headers=headers or {}, params=params or {}) as response:
        read = SseRead(status=response.status_code)
        if response.status_code != 200:
            response.read()
            read.error = response.json() if response.content else None
            return read
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        for item in parse_lines(response.iter_lines()):
            if isinstance(item, SseEvent):
                read.events.append(item)
            else:
                read.comments.append(item)
            if until is not None and until(read):
                return read
            assert time.monotonic() < deadline, f"stream {path} still open after {timeout} s: {read}"
        read.closed_by_server = True
        return read


@dataclass
class SocketRead:
    """What one WebSocket connection delivered: its messages (as JSON) and how it was closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None


def read_socket(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    first_message: dict[str, Any] | None = None,
    until: Callable[[SocketRead], bool] | None = None,
    timeout: float = 120.0,
) -> SocketRead:
    """Connect (a real client: the ``websockets`` library), send ``first_message`` if given, and read
    until the server closes (its close code is kept) or ``until`` says stop (then the client closes)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    read = SocketRead()
    with connect(url, additional_headers=headers or {}, open_timeout=15, close_timeout=5) as socket:
        if first_message is not None:
            socket.send(json.dumps(first_message))
        try:
            while True:
                raw = socket.recv(timeout=max(0.1, deadline - time.monotonic()))
                read.messages.append(json.loads(raw))
                if until is not None and until(read):
                    return read
        except ConnectionClosed:
            read.close_code, read.close_reason = socket.close_code, socket.close_reason
    return read


def stored_events(database_url: str, job_id: str) -> list[tuple[int, str, str]]:
    """(seq, type, CloudEvents id) of a job's events in the events table, in order: what every stream of
    the job must deliver."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT seq, type, event_id FROM events WHERE job_id = :job ORDER BY seq"),
                {"job": job_id},
            ).all()
    finally:
        engine.dispose()
    return [(int(seq), str(type_), str(event_id)) for seq, type_, event_id in rows]
