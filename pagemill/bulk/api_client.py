"""A small client of Pagemill's HTTP API for `pagemill submit` and `pagemill backfill`.

It submits documents (a file as multipart, a URL as JSON), follows a job (its Server-Sent Events stream,
or polling where events are off), and downloads results. 429 and 503 answers are retried after their
``Retry-After`` (up to ``max_retry_wait_s`` each: a quota that renews tomorrow is reported, not waited for);
connection failures are retried with backoff. Submissions carry an ``Idempotency-Key``, so a retried
POST never makes a second job. The API key is sent in a header and never printed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

import httpx

from pagemill import __version__
from pagemill.conversion.result import write_atomically
from pagemill.jobs.options import JobOptions, OutputFormat

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "expired"})
_FINAL_EVENTS = frozenset(f"job.{state}" for state in FINAL_STATES)
_RETRIED_STATUSES = frozenset({502, 503, 504})
_ATTEMPTS = 5

JobUpdate = Callable[[dict[str, Any]], None]
"""Called with a job's fields (``state``, ``pages``: ``total``, ``done``, ``failed``) as they change."""


class Stopped(Exception):
    """Following a job was given up: the caller was asked to stop (Ctrl-C)."""


class ApiError(Exception):
    """The API refused a request (its error ``code``, ``message``, ``details``), or could not be reached
    (``code`` ``API_UNREACHABLE``, status 0)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        """True for an answer about this document or request (4xx but 408/429): trying again won't help."""
        return 400 <= self.status < 500 and self.status not in (408, 429)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event of an SSE stream."""

    event: str
    data: str
    id: str | None


def parse_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events of a ``text/event-stream`` given line by line (WHATWG rules: ``field: value`` lines, comments
    starting with ``:``, ``data`` lines joined with newlines, an event dispatched at a blank line)."""
    event, last_id = "", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value


def form_fields(options: JobOptions, password: str | None) -> dict[str, str]:
    """A submission's form fields for ``options`` (only those that differ from the server's defaults)."""
    fields = {"formats": ",".join(fmt.value for fmt in options.formats), "ocr_mode": options.ocr_mode.value}
    if options.page_range:
        fields["page_range"] = options.page_range
    if options.engine:
        fields["engine"] = options.engine
    if password:
        fields["password"] = password
    return fields


class ApiClient:
    """One connection pool to the API at ``base_url``, safe to share between threads."""

    def __init__(
        self, base_url: str, key: str | None, *, timeout_s: float = 60.0, max_retry_wait_s: float = 120.0
    ) -> None:
        headers = {"User-Agent": f"pagemill-cli/{__version__}"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.max_retry_wait_s = max_retry_wait_s

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- requests ----------------------------------------------------------------------------------

    def submit_file(
        self,
        name: str,
        body: IO[bytes],
        options: JobOptions,
        *,
        password: str | None = None,
        idempotency_key: str,
    ) -> tuple[dict[str, Any], bool]:
        """POST /api/v1/documents with the document ``body`` (seekable; sent from its start on every
        attempt) named ``name``; the job and whether the server replayed an earlier one (same
        ``idempotency_key``)."""
        fields = form_fields(options, password)

        def send() -> httpx.Response:
            body.seek(0)
            return self._http.post(
                "/api/v1/documents",
                files={"file": (name, body, "application/octet-stream")},
                data=fields,
                headers={"Idempotency-Key": idempotency_key},
            )

        response = self._send(send)
        return response.json(), response.headers.get("Idempotent-Replayed") == "true"

    def submit_url(
        self, url: str, options: JobOptions, *, password: str | None = None, idempotency_key: str
    ) -> tuple[dict[str, Any], bool]:
        """POST /api/v1/documents with a URL the server fetches; the job and whether it was replayed."""
        body: dict[str, Any] = {"url": url, "options": options.model_dump(mode="json", exclude_none=True)}
        if password:
            body["options"]["password"] = password
        response = self._send(
            lambda: self._http.post(
                "/api/v1/documents", json=body, headers={"Idempotency-Key": idempotency_key}
            )
        )
        return response.json(), response.headers.get("Idempotent-Replayed") == "true"

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /api/v1/jobs/{job_id}."""
        body: dict[str, Any] = self._send(lambda: self._http.get(f"/api/v1/jobs/{job_id}")).json()
        return body

    def jobs(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """GET /api/v1/jobs?id=… (at most the server's api.page_size_max ids; its 422 says how many): the
        tenant's jobs among them, by id (an id missing from the answer is no job of the tenant any more)."""
        params = httpx.QueryParams({"id": list(job_ids), "limit": len(job_ids)})
        body = self._send(lambda: self._http.get("/api/v1/jobs", params=params)).json()
        return {str(item["id"]): item for item in body["items"]}

    def download(self, job_id: str, fmt: OutputFormat, destination: Path) -> None:
        """Stream a job's result in ``fmt`` to ``destination`` (through a temporary file, renamed into
        place: a file that exists is complete)."""

        def send() -> httpx.Response:
            request = self._http.build_request(
                "GET", f"/api/v1/jobs/{job_id}/result", params={"format": fmt.value}
            )
            response = self._http.send(request, stream=True)
            if response.status_code != 200:
                response.read()
                response.close()
            return response

        response = self._send(send)
        try:
            write_atomically(destination, response.iter_bytes())
        finally:
            response.close()

    # --- following a job ---------------------------------------------------------------------------

    def follow(
        self,
        job_id: str,
        on_update: JobUpdate,
        *,
        poll_interval_s: float = 1.0,
        stop: threading.Event | None = None,
    ) -> tuple[dict[str, Any], Literal["events", "polling"]]:
        """Wait until the job ends, calling ``on_update`` as it progresses; the final job and how it was
        followed: its event stream (resumed after a dropped connection), or polling when the server has
        events off (``EVENTS_DISABLED``) or the stream keeps failing. Stopped once ``stop`` is set (seen
        at the stream's next line: its heartbeats come every 15 s)."""
        stop = stop or threading.Event()
        last_seq = 0
        for _ in range(5):
            try:
                last_seq, ended = self._read_events(job_id, last_seq, on_update, stop)
            except ApiError as exc:
                if exc.code == "EVENTS_DISABLED" or not exc.permanent:
                    break
                raise
            except httpx.HTTPError:
                if stop.wait(1.0):
                    raise Stopped() from None
                continue
            if ended:
                return self.job(job_id), "events"
        return self._poll(job_id, on_update, poll_interval_s, stop), "polling"

    def _read_events(
        self, job_id: str, after: int, on_update: JobUpdate, stop: threading.Event
    ) -> tuple[int, bool]:
        """Read the job's stream after sequence ``after``; (last sequence seen, whether the job ended)."""
        headers = {"Last-Event-ID": str(after)} if after else {}
        # Heartbeats come every 15 s: a minute of silence is a dead connection.
        timeout = httpx.Timeout(60.0, connect=10.0)
        with self._http.stream(
            "GET", f"/api/v1/jobs/{job_id}/events", headers=headers, timeout=timeout
        ) as response:
            if response.status_code == 204:  # ended, and nothing after `after`
                return after, True
            if response.status_code != 200:
                response.read()
                raise _error_of(response)
            for event in parse_sse(_until(stop, response.iter_lines())):
                if event.id is not None and event.id.isdigit():
                    after = int(event.id)
                try:
                    fields = json.loads(event.data).get("data") or {}
                except ValueError:
                    continue
                if isinstance(fields, dict) and "pages" in fields:
                    on_update(fields)
                if event.event in _FINAL_EVENTS:
                    return after, True
        return after, False

    def _poll(
        self, job_id: str, on_update: JobUpdate, interval_s: float, stop: threading.Event
    ) -> dict[str, Any]:
        while True:
            job = self.job(job_id)
            on_update(job)
            if job["state"] in FINAL_STATES:
                return job
            if stop.wait(interval_s):
                raise Stopped()

    # --- retries -----------------------------------------------------------------------------------

    def _send(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """Send until the answer is final: after 429/503's Retry-After (if at most ``max_retry_wait_s``),
        and after connection failures with backoff; ApiError for an error answer."""
        failures = 0
        while True:
            try:
                response = send()
            except httpx.TransportError as exc:
                failures += 1
                if failures >= _ATTEMPTS:
                    raise ApiError(
                        0, "API_UNREACHABLE", f"The API did not answer ({type(exc).__name__})."
                    ) from None
                time.sleep(_backoff(failures))
                continue
            if response.status_code < 400:
                return response
            error = _error_of(response)
            if response.status_code == 429:
                # Rate limits free a slot within seconds: wait as told. A quota renews at the end of the
                # day or month: report it (the caller stops) rather than hang.
                if error.retry_after is not None and error.retry_after <= self.max_retry_wait_s:
                    time.sleep(max(error.retry_after, 0.1))
                    continue
            elif response.status_code in _RETRIED_STATUSES and failures + 1 < _ATTEMPTS:
                failures += 1
                wait = error.retry_after if error.retry_after is not None else _backoff(failures)
                time.sleep(min(wait, self.max_retry_wait_s))
                continue
            raise error


def _until(stop: threading.Event, lines: Iterator[str]) -> Iterator[str]:
    """``lines`` until ``stop`` is set (then Stopped)."""
    for line in lines:
        if stop.is_set():
            raise Stopped()
        yield line


def _backoff(failures: int) -> float:
    return float(min(30.0, 0.5 * 2**failures) * random.uniform(0.5, 1.0))


def _error_of(response: httpx.Response) -> ApiError:
    """The ApiError of an error answer: its body's ``error`` (Pagemill's shape), else the status alone."""
    retry_after: float | None = None
    with_header = response.headers.get("Retry-After")
    if with_header is not None:
        try:
            retry_after = float(with_header)
        except ValueError:
            retry_after = None
    try:
        error = response.json()["error"]
        return ApiError(
            response.status_code,
            str(error["code"]),
            str(error["message"]),
            error.get("details") or {},
            retry_after,
        )
    except (ValueError, KeyError, TypeError):
        return ApiError(
            response.status_code, f"HTTP_{response.status_code}", response.reason_phrase, {}, retry_after
        )
