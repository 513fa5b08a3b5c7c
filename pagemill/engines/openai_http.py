"""The HTTP side of the engines that talk to an OpenAI-compatible server: :mod:`pagemill.engines.vllm` (pages,
chat completions) and :mod:`pagemill.engines.whisper_openai` (recordings, transcriptions).

Each engine holds one :class:`ServerClient`: a thread-safe ``httpx.Client`` made on first use (a keep-alive
pool sized to the requests the engine keeps in flight), the ``GET /v1/models`` health check, and how one
request is sent and retried. What a request carries and what a non-transient answer means stay with the
engine.

* Connection refused or dropped, a connect or read timeout, HTTP 429 / 502 / 503 / 504: a
  :class:`TransientFailure`, retried ``max_retries`` times (exponential backoff with full jitter; a
  Retry-After header on 429 or 503 wins; no wait is longer than :data:`MAX_BACKOFF_S`), then
  EngineUnavailable {reason, status when there is one, attempts}.
* A request that cannot be sent at all (a bad ``base_url``, proxy trouble): EngineUnavailable at once.
* Any other answer goes back to the engine (:func:`error_message` and :func:`failure_reason` help it say
  what a 4xx or 5xx means).

Within a time limit (pagemill.deadlines) every request's timeout is at most what is left of it, a wait
between attempts is cut to it, and once it is spent the limit's PROCESSING_TIMEOUT is raised: no retry.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import httpx

from pagemill import deadlines
from pagemill.engines.base import EngineHealth
from pagemill.errors import EngineUnavailable
from pagemill.metrics import ENGINE_IN_FLIGHT

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
MAX_BACKOFF_S = 60.0
"""No single wait between retries is longer than this, whatever Retry-After or the doubling says."""
HEALTH_TIMEOUT_S = 5.0
SPARE_CONNECTIONS = 4
"""Connections kept beyond one per request in flight, so a health check never waits for a slot."""

_Answer = TypeVar("_Answer")


class ServerSettings(Protocol):
    """What a :class:`ServerClient` reads of an engine's settings (OpenAiEngineSettings,
    WhisperServerSettings)."""

    @property
    def base_url(self) -> str | None: ...

    @property
    def api_key(self) -> str | None: ...

    @property
    def timeout_s(self) -> float: ...

    @property
    def connect_timeout_s(self) -> float: ...

    @property
    def max_retries(self) -> int: ...

    @property
    def retry_backoff_s(self) -> float: ...


class TransientFailure(Exception):
    """One failed attempt that may pass: an overload status or a transport failure."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after_s = retry_after_s


# --- Pure helpers -----------------------------------------------------------------------------------------


def root_url(base_url: str) -> str:
    """The server root of ``base_url``, which may be the root or end in ``/v1``."""
    # Accept the OpenAI-client convention "http://host:8000/v1" as well as the server root.
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message(response: httpx.Response) -> tuple[str, str]:
    """(message, code) from an error body: vLLM's ``{"message"}`` or OpenAI's ``{"error": {...}}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500], ""
    if isinstance(body, dict):
        error = body.get("error")
        source = error if isinstance(error, dict) else body
        message = source.get("message") or (error if isinstance(error, str) else "")
        return str(message)[:500], str(source.get("code") or "")
    return str(body)[:500], ""


def failure_reason(status: int) -> str:
    """The EngineFailed reason of an HTTP status that is neither 200 nor transient, as far as the status
    alone tells: ``unauthorized``, ``model_not_found``, ``bad_request`` or ``server_error``."""
    if status in (401, 403):
        return "unauthorized"
    if status == 404:
        return "model_not_found"
    if 400 <= status < 500:
        return "bad_request"
    return "server_error"


def backoff_s(attempt: int, retry_after_s: float | None, retry_backoff_s: float, rng: random.Random) -> float:
    """The wait after failed ``attempt`` (1, 2, ...): full jitter over an exponential ceiling starting at
    ``retry_backoff_s``; a server's Retry-After wins (both capped at :data:`MAX_BACKOFF_S`)."""
    if retry_after_s is not None:
        return min(retry_after_s, MAX_BACKOFF_S)
    ceiling = min(retry_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
    return rng.uniform(0.0, ceiling)


# --- The client -------------------------------------------------------------------------------------------


class ServerClient:
    """One engine's connection to its OpenAI-compatible server. Thread-safe: the engine's worker threads
    share it."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        engine: str,
        kind: str,
        log: logging.Logger,
        in_flight: Callable[[], int],
        transport: httpx.BaseTransport | None = None,
        unreachable_details: Mapping[str, Any] | None = None,
    ) -> None:
        """``engine`` is the engine's name (errors, logs, metrics); ``kind`` what messages call it ("OCR
        engine", "speech engine"); ``log`` the engine's logger. ``in_flight`` is asked, when the client is
        made, how many requests the engine may have in flight. ``unreachable_details`` are added to the
        EngineUnavailable raised when a request cannot be sent. ``transport`` is for tests."""
        self.settings = settings
        self.engine = engine
        self.kind = kind
        self.log = log
        self._in_flight = in_flight
        self._transport = transport
        self._unreachable_details = dict(unreachable_details or {})
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def http(self) -> httpx.Client:
        """The shared ``httpx.Client``, made on first use (not at import, nor before a worker forks)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    pool = self._in_flight() + SPARE_CONNECTIONS
                    api_key = self.settings.api_key
                    self._client = httpx.Client(
                        transport=self._transport,
                        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
                        timeout=httpx.Timeout(
                            self.settings.timeout_s, connect=self.settings.connect_timeout_s
                        ),
                        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
                    )
        return self._client

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def check(self, model: str) -> EngineHealth:
        """``GET /v1/models`` with a short timeout; ok only when ``model`` is listed. Never raises."""
        if not self.settings.base_url:
            return EngineHealth(ok=False, detail="base_url is not set")
        url = f"{root_url(self.settings.base_url)}/v1/models"
        timeout = httpx.Timeout(
            HEALTH_TIMEOUT_S, connect=min(self.settings.connect_timeout_s, HEALTH_TIMEOUT_S)
        )
        try:
            response = self.http().get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return EngineHealth(ok=False, detail=f"unreachable: {type(exc).__name__}")
        if response.status_code != 200:
            return EngineHealth(ok=False, detail=f"HTTP {response.status_code}")
        try:
            models = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            return EngineHealth(ok=False, detail="malformed /v1/models response")
        if model not in models:
            return EngineHealth(ok=False, detail=f"model {model!r} is not served", models=models)
        return EngineHealth(ok=True, detail="ready", models=models)

    def post(self, url: str, **content: Any) -> httpx.Response:
        """One ``POST`` (``content``: httpx's ``json``, ``data``, ``files``). Returns the answer when it is
        200 or a failure that no retry mends (the engine says what it means); raises TransientFailure,
        EngineUnavailable when the request cannot be sent, or a spent time limit's PROCESSING_TIMEOUT."""
        timeout = self._request_timeout()
        try:
            with ENGINE_IN_FLIGHT.labels(engine=self.engine).track_inprogress():
                if timeout is None:
                    response = self.http().post(url, **content)
                else:
                    response = self.http().post(url, timeout=timeout, **content)
        except httpx.ConnectError as exc:
            raise TransientFailure("connection_refused") from exc
        except httpx.TimeoutException as exc:
            raise TransientFailure(
                "connect_timeout" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
            ) from exc
        except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:
            raise TransientFailure("connection_dropped") from exc
        except httpx.HTTPError as exc:
            # A bad base_url (unsupported scheme, proxy trouble): nothing gets through; not the input's fault.
            self.log.error("engine %s: request failed: %s", self.engine, exc)
            raise EngineUnavailable(
                f"The {self.kind} cannot be reached.",
                engine=self.engine,
                reason=type(exc).__name__,
                **self._unreachable_details,
            ) from exc
        status = response.status_code
        if status in TRANSIENT_STATUS:
            retry_after = (
                parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
            )
            raise TransientFailure(f"HTTP {status}", status=status, retry_after_s=retry_after)
        return response

    def with_retries(
        self, attempt_once: Callable[[], _Answer], *, sleep: Callable[[float], None], rng: random.Random
    ) -> tuple[_Answer, int]:
        """(what ``attempt_once`` returned, attempts made): a TransientFailure is retried ``max_retries``
        times, waiting as :func:`backoff_s` says (``rng`` draws the jitter, ``sleep`` waits), then raised
        as EngineUnavailable; any other exception passes through at once."""
        attempts_allowed = self.settings.max_retries + 1
        for attempt in range(1, attempts_allowed + 1):
            try:
                return attempt_once(), attempt
            except TransientFailure as exc:
                if deadlines.spent():
                    # The time is up (pagemill.deadlines): not the server's fault; no retry, no fallback.
                    raise deadlines.timed_out() from exc
                if attempt >= attempts_allowed:
                    self.log.error(
                        "engine %s: unavailable after %d attempts: %s", self.engine, attempt, exc.reason
                    )
                    details: dict[str, Any] = {
                        "engine": self.engine,
                        "reason": exc.reason,
                        "attempts": attempt,
                    }
                    if exc.status is not None:
                        details["status"] = exc.status
                    raise EngineUnavailable(
                        f"The {self.kind} is unavailable or overloaded; try again shortly.", **details
                    ) from exc
                delay = backoff_s(attempt, exc.retry_after_s, self.settings.retry_backoff_s, rng)
                deadline = deadlines.current()
                if deadline is not None:
                    delay = min(delay, deadline.remaining())
                self.log.warning(
                    "engine %s: attempt %d/%d failed (%s); retrying in %.2fs",
                    self.engine,
                    attempt,
                    attempts_allowed,
                    exc.reason,
                    delay,
                )
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _request_timeout(self) -> httpx.Timeout | None:
        """None (the client's timeouts), or less within a time limit: what is left of it
        (pagemill.deadlines); a spent limit raises its PROCESSING_TIMEOUT."""
        if deadlines.current() is None:
            return None
        left = deadlines.budget(self.settings.timeout_s)
        return httpx.Timeout(left, connect=min(self.settings.connect_timeout_s, left))
