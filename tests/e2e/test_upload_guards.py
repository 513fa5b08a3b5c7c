"""Upload guards that must act before the body is read, over raw sockets against a real API process: the
tier's size cap answers 413 from Content-Length and as soon as a chunked body passes it, and a body that
stops arriving is answered 408 and its connection closed.

Raw sockets, because an HTTP client sends the whole body before it reads an answer: here the test sends
only what it must and then reads, so a server that waits for the rest shows up as a timeout.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support.services import embedded_env

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
FREE_CAP = 10 * MIB  # the free tier's default max_file_bytes
FREE_RATE = 3  # requests a minute per free key, for the rate-limit guard
READ_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An embedded stack whose global cap (512 MiB) is far above the free tier cap; a short read timeout."""
    env = {
        **embedded_env(tmp_path_factory.mktemp("guards")),
        "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(512 * MIB),
        "PAGEMILL_API__BODY_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "PAGEMILL_TIERS__FREE__RATE_LIMIT": f"{FREE_RATE}/minute",
    }
    with running_stack(env) as stack:
        yield stack


def _connect(stack: Stack) -> socket.socket:
    url = urlsplit(stack.base_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30)
    sock.settimeout(30)
    return sock


def _head(key: str, headers: dict[str, str]) -> bytes:
    lines = ["POST /api/v1/documents HTTP/1.1", "Host: pagemill", f"Authorization: Bearer {key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers (lower-case names) and JSON body of the next response; fails after ``timeout`` s."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)
    }
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body)


def _multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()


def _announced_upload(key: str, length: int) -> bytes:
    """The start of a multipart upload announcing ``length`` bytes: headers and the file part's head only."""
    boundary = "b0undary"
    content_type = f"multipart/form-data; boundary={boundary}"
    head = _head(key, {"Content-Type": content_type, "Content-Length": str(length)})
    return head + _multipart_head(boundary)


def test_tier_cap_answers_from_content_length_before_the_body_is_sent(guarded: Stack) -> None:
    free_key = guarded.create_key("guards-free", "free")["secret"]
    with _connect(guarded) as sock:
        sock.sendall(_announced_upload(free_key, 100 * MIB))
        # 100 MiB announced, a few bytes sent: the answer must come now, not after the upload.
        status, headers, body = _read_response(sock, timeout=15)
    assert status == 413, body
    assert body["error"]["code"] == "FILE_TOO_LARGE"
    assert body["error"]["details"]["max_bytes"] == FREE_CAP
    assert headers.get("connection") == "close"


def test_tier_cap_stops_a_chunked_body_as_soon_as_it_passes(guarded: Stack) -> None:
    free_key = guarded.create_key("guards-free-chunked", "free")["secret"]
    boundary = "b0undary"
    chunk = b"\0" * MIB
    sent = 0
    with _connect(guarded) as sock:
        sock.sendall(
            _head(
                free_key,
                {"Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"},
            )
        )
        first = _multipart_head(boundary)
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        # Up to 500 MiB, unless the server answers first (the tier cap is 10 MiB).
        while sent < 500 * MIB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if sent > 40 * MIB:
                # Far past the cap and no answer: give the server a moment, then fail on what it says.
                time.sleep(2)
                break
        status, _, body = _read_response(sock, timeout=15)
    assert status == 413, body
    assert body["error"]["details"]["max_bytes"] == FREE_CAP
    assert sent < 20 * MIB, f"the 413 came only after {sent / MIB:.0f} MiB"


def test_a_spent_rate_budget_answers_429_before_the_body_is_sent(guarded: Stack) -> None:
    free_key = guarded.create_key("guards-free-rate", "free")["secret"]
    headers = {"Authorization": f"Bearer {free_key}"}
    with httpx.Client(base_url=guarded.base_url, headers=headers, timeout=30) as client:
        for _ in range(FREE_RATE):
            assert client.get("/api/v1/jobs").status_code == 200  # one budget across routes
    with _connect(guarded) as sock:
        # 5 MiB announced (under the tier's size cap), a few bytes sent: the budget is spent, so the
        # answer must come now rather than after the upload.
        sock.sendall(_announced_upload(free_key, 5 * MIB))
        status, response_headers, body = _read_response(sock, timeout=15)
    assert status == 429, body
    assert body["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(response_headers["retry-after"]) <= 60
    assert response_headers.get("connection") == "close"


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(guarded: Stack) -> None:
    # The enterprise cap (512 MiB) lets 100 MiB through: the upload is stopped by the timeout, not a cap.
    with _connect(guarded) as sock:
        sock.sendall(_announced_upload(guarded.key, 100 * MIB) + b"\0" * 65536)
        started = time.monotonic()
        status, headers, body = _read_response(sock, timeout=READ_TIMEOUT_S + 20)
        waited = time.monotonic() - started
        sock.settimeout(10)
        closed = sock.recv(1) == b""
    assert status == 408, body
    assert body["error"]["code"] == "REQUEST_TIMEOUT"
    assert body["request_id"]
    assert headers.get("connection") == "close"
    assert closed, "the server kept the connection of a half-sent body open"
    assert waited >= READ_TIMEOUT_S - 0.5, f"answered after {waited:.1f}s, before the timeout"
