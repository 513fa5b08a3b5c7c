"""A real HTTP server that receives webhooks: scripted answers per path, every request recorded with its
headers, body and arrival time, and verified with the ``standardwebhooks`` library against the secrets the
test gave for that path.

    with WebhookReceiver() as receiver:
        receiver.script("/hook", Reply(500), Reply(200))      # then 200 for anything further
        receiver.trust("/hook", secret)
        ...
        receiver.wait_for("/hook", 2)
        assert all(r.verified for r in receiver.received("/hook"))
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, headers and a body, sent after ``delay_s`` (or once ``hold`` is set,
    for a request kept open until the test lets it go)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0
    hold: threading.Event | None = None


@dataclass
class Received:
    """A request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.time() when the request's body had arrived."""
    verified_with: list[str] = field(default_factory=list)
    """Which of the path's trusted secrets verify it (standardwebhooks)."""
    verify_errors: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """True when at least one trusted secret verifies the request."""
        return bool(self.verified_with)

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header."""
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        """The body as JSON (the CloudEvent)."""
        return json.loads(self.body)

    @property
    def type(self) -> str:
        """The event type without the ``com.pagemill.`` prefix."""
        return str(self.json()["type"]).removeprefix("com.pagemill.")


class WebhookReceiver:
    """The server (a thread); use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._secrets: dict[str, list[str]] = {}
        self._received: list[Received] = []
        self._holds: list[threading.Event] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                reply = receiver._arrived(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if reply.hold is not None:
                    reply.hold.wait(120)
                elif reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up waiting (a timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies`` in turn, then 200."""
        with self._lock:
            self._scripts[path] = list(replies)
            self._holds += [reply.hold for reply in replies if reply.hold is not None]

    def trust(self, path: str, *secrets: str) -> None:
        """Verify requests to ``path`` against these secrets (any of them)."""
        with self._lock:
            self._secrets[path] = list(secrets)

    def received(self, path: str | None = None) -> list[Received]:
        """Requests so far (to ``path`` only, when given), in arrival order."""
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(
        self, path: str, count: int, timeout: float = 60, what: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """Wait until ``count`` requests (matching ``what``) reached ``path``; all of them so far."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.received(path) if what is None or what(r)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} requests to {path} after {timeout}s: "
                    f"{[(r.type, r.headers.get('webhook-id')) for r in self.received(path)]}"
                )
            time.sleep(0.05)

    def _arrived(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        got = Received(path=path, headers=headers, body=body, at=time.time())
        with self._lock:
            secrets = list(self._secrets.get(path, []))
            script = self._scripts.get(path)
            reply = script.pop(0) if script else Reply()
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                got.verify_errors.append(str(exc))
            else:
                got.verified_with.append(secret)
        with self._lock:
            self._received.append(got)
        return reply

    def close(self) -> None:
        """Let held requests go and stop the server."""
        with self._lock:
            for hold in self._holds:
                hold.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def job_events(received: Sequence[Received], job_id: str) -> list[Received]:
    """The requests about one job, in arrival order."""
    return [r for r in received if r.json().get("subject") == job_id]
