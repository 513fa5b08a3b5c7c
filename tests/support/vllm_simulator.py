"""An OpenAI-compatible server that behaves like vLLM for throughput purposes (test support, not product).

Run it with ``python -m tests.support.vllm_simulator --port 8000 [options]``; tests start it through
:func:`tests.support.simulator.vllm_simulator`. No GPU, no model: requests sleep for the time a batched
GPU server would spend on them, so a client's throughput can be compared to a known capacity.

Scheduling model
----------------
Continuous batching is reduced to its throughput essentials. At most ``--max-num-seqs`` requests RUN at
once; the others WAIT in a FIFO queue (exactly what ``vllm:num_requests_running`` and
``vllm:num_requests_waiting`` report). A running request holds its slot for::

    service_s = (prefill_ms * images + completion_tokens * ms_per_token) / 1000

independent of how many others run (a GPU that is not yet compute-bound). Hence the exact capacity for
one-image pages of ``T`` output tokens::

    capacity_pages_per_s = max_num_seqs * 1000 / (prefill_ms + T * ms_per_token)

``T`` is ``--tokens`` when given, else 256 in the default (hash) answer mode; with ``--ocr tesseract``
and no ``--tokens`` it is ``ceil(len(text) / 4)`` per page, so ``/sim/stats`` reports the capacity for
the mean completion tokens seen so far (``null`` before the first answer). Slots follow a virtual clock
(a queued request starts when its predecessor was due to end, not when the event loop got round to it),
so loop latency does not eat into the capacity. The capacity is reached only while the client keeps more
than ``max_num_seqs`` requests in flight (``waiting_seconds`` close to the run time). The simulator costs
about 1 ms of CPU per request (60 KB JPEG): it tracks its formula to within 5% up to ~400 requests/s.

Work done outside the slot (not part of the capacity): request parsing, the Tesseract run of
``--ocr tesseract`` (before queueing, cached per image) and the ``slow_ms`` fault (after the slot).
A client that disconnects while its request waits or runs has it aborted and its slot freed, as vLLM does.

Answers
-------
``choices[0].message.content`` is ``"Page <sha1(image)[:8]>"`` followed by deterministic lorem words up
to ``T * 4`` characters (``completion_tokens == T``), or with ``--ocr tesseract`` the real Tesseract
reading of the image (``completion_tokens`` = ``--tokens`` or ``ceil(len(text) / 4)``). A request
``max_tokens`` lower than that cuts the text to ``max_tokens * 4`` characters with ``finish_reason:
"length"``, and ``prompt_tokens + max_tokens > --max-model-len`` is the real 400 below.
``prompt_tokens`` = ``--image-tokens`` per image + ``ceil(len(prompt text) / 4)``.

Validation (vLLM-like, OpenAI error body ``{"error": {"message", "type", "param", "code"}}``)
----------------------------------------------------------------------------------------------
unknown ``model`` → 404 ``NotFoundError`` "The model `X` does not exist." (a missing model means the
served one); body not a JSON object, no messages, no image part, no text part, an image that is not a
base64 ``data:image/...`` URL of a real image, ``stream: true``, a bad ``max_tokens`` or an over-long
request → 400 ``BadRequestError``.

Fault injection
---------------
Set at start by flags (``--overload-503 N`` ...) and at run time by ``POST /sim/faults`` with a JSON
object of the same names (``{"overload_503": 3, "slow_ms": 200}``): given keys are replaced, others kept.
Counted faults apply to the next N valid chat requests and decrement as they fire; at most one error
fault (checked in the order below) and one output fault fire per request. ``POST /sim/reset`` clears
faults and statistics. What a client sees:

* ``drop``: the server closes the TCP connection without a byte of response, at once (no slot used).
  httpx raises ``RemoteProtocolError("Server disconnected without sending a response.")``; requests'
  ``ConnectionError``; curl "Empty reply from server".
* ``overload_503``: 503 ``{"error": {"type": "ServiceUnavailableError", "code": 503, ...}}`` at once.
* ``rate_limit_429``: 429 ``RateLimitError`` with a ``Retry-After: <retry_after_s>`` header, at once.
* ``context_length_400``: 400 ``BadRequestError`` "This model's maximum context length is L tokens.
  However, you requested R tokens (P in the messages, C in the completion). Please reduce the length of
  the messages or completion." (R > L), at once.
* ``truncate``: 200, half of the normal text, ``finish_reason: "length"``.
* ``repeat``: 200, degenerate repetition: one line 200 times, ``finish_reason: "length"``.
* ``empty``: 200, ``content: ""``, ``completion_tokens: 0``, ``finish_reason: "stop"``.
* ``slow_ms`` (not counted, stays until changed): every answer is delayed that long after its slot
  (latency without lower capacity; a client timeout during the delay aborts the request).

Other endpoints: ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text),
``GET /sim/stats`` and ``GET /sim/faults`` (JSON); ``POST /v1/audio/transcriptions`` and its
``/sim/audio/*`` controls (:mod:`tests.support.vllm_audio`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import secrets
import shutil
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.vllm_audio import AudioEndpoint

DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
DEFAULT_TOKENS = 256
CHARS_PER_TOKEN = 4
REPEAT_LINES = 200
_OCR_CACHE_SIZE = 1024

COUNTED_FAULTS = (
    "drop",
    "overload_503",
    "rate_limit_429",
    "context_length_400",
    "truncate",
    "repeat",
    "empty",
)
ERROR_FAULTS = ("drop", "overload_503", "rate_limit_429", "context_length_400")
OUTPUT_FAULTS = ("truncate", "repeat", "empty")

_LOREM = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "ut",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "ut",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "dolor",
    "in",
    "reprehenderit",
    "in",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "dolore",
    "eu",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "in",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
)

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")


# --------------------------------------------------------------------------------------------------
# Configuration and state


@dataclasses.dataclass
class SimConfig:
    """Start-up options (the CLI flags)."""

    model: str = DEFAULT_MODEL
    max_num_seqs: int = 16
    prefill_ms: float = 40.0
    ms_per_token: float = 0.5
    tokens: int | None = None
    ocr: str = "hash"
    image_tokens: int = 256
    max_model_len: int = 8192
    retry_after_s: int = 1
    ocr_concurrency: int = max(1, os.cpu_count() or 1)

    def service_seconds(self, images: int, completion_tokens: int) -> float:
        """How long a request holds its slot."""
        return (self.prefill_ms * images + completion_tokens * self.ms_per_token) / 1000.0

    def capacity(self, tokens_per_page: float) -> float:
        """Pages/s with every slot busy on one-image pages of ``tokens_per_page`` output tokens."""
        return self.max_num_seqs * 1000.0 / (self.prefill_ms + tokens_per_page * self.ms_per_token)


@dataclasses.dataclass
class Faults:
    """Injected faults; counters decrement as they fire."""

    drop: int = 0
    overload_503: int = 0
    rate_limit_429: int = 0
    context_length_400: int = 0
    truncate: int = 0
    repeat: int = 0
    empty: int = 0
    slow_ms: float = 0.0

    def take(self, names: tuple[str, ...]) -> str | None:
        """Fire the first armed fault among ``names`` (decrementing it) and return its name."""
        for name in names:
            left = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
                return name
        return None

    def update(self, values: dict[str, Any]) -> None:
        """Replace the given fields; raise ``ValueError`` for unknown names or bad values."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(known)}")
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"fault {name!r} needs a number >= 0, got {value!r}")
            setattr(self, name, float(value) if name == "slow_ms" else int(value))


class Scheduler:
    """At most ``max_num_seqs`` running; the rest wait FIFO. Tracks busy and waiting time."""

    def __init__(self, max_num_seqs: int) -> None:
        self.max_num_seqs = max_num_seqs
        self.running = 0
        self._queue: deque[tuple[asyncio.Future[float], float]] = deque()
        self.max_running_seen = 0
        self.max_waiting_seen = 0
        self._busy_since: float | None = None
        self._waiting_since: float | None = None
        self._busy_total = 0.0
        self._waiting_total = 0.0

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._queue)

    def busy_seconds(self) -> float:
        """Time with at least one request running (the current stretch included)."""
        now = time.monotonic()
        return self._busy_total + (now - self._busy_since if self._busy_since is not None else 0.0)

    def waiting_seconds(self) -> float:
        """Time with at least one request waiting (the current stretch included)."""
        now = time.monotonic()
        return self._waiting_total + (now - self._waiting_since if self._waiting_since is not None else 0.0)

    def reset_times(self) -> None:
        """Restart the busy/waiting clocks and peaks (live requests keep counting from now)."""
        now = time.monotonic()
        self._busy_total = self._waiting_total = 0.0
        self._busy_since = now if self.running else None
        self._waiting_since = now if self._queue else None
        self.max_running_seen = self.running
        self.max_waiting_seen = self.waiting

    def _changed(self) -> None:
        now = time.monotonic()
        self.max_running_seen = max(self.max_running_seen, self.running)
        self.max_waiting_seen = max(self.max_waiting_seen, self.waiting)
        if self.running and self._busy_since is None:
            self._busy_since = now
        elif not self.running and self._busy_since is not None:
            self._busy_total += now - self._busy_since
            self._busy_since = None
        if self._queue and self._waiting_since is None:
            self._waiting_since = now
        elif not self._queue and self._waiting_since is not None:
            self._waiting_total += now - self._waiting_since
            self._waiting_since = None

    async def run(self, seconds: float) -> None:
        """Wait for a slot (FIFO), hold it ``seconds``, free it. Cancellation frees the slot or the place.

        Slot times follow a virtual clock: a request admitted from the queue starts when its predecessor's
        slot was due to end (or when it was queued, if later), not when the event loop got round to it, so
        event-loop latency never lowers the capacity below the formula.
        """
        loop = asyncio.get_running_loop()
        if self.running < self.max_num_seqs and not self._queue:
            self.running += 1
            self._changed()
            start = loop.time()
        else:
            ticket: asyncio.Future[float] = loop.create_future()
            entry = (ticket, loop.time())
            self._queue.append(entry)
            self._changed()
            try:
                start = await ticket
            except asyncio.CancelledError:
                if ticket.done() and not ticket.cancelled():
                    self._release(loop.time())  # admitted just before the cancellation arrived
                else:
                    with contextlib.suppress(ValueError):
                        self._queue.remove(entry)
                    self._changed()
                raise
        end = start + seconds
        try:
            await asyncio.sleep(max(0.0, end - loop.time()))
        finally:
            self._release(min(end, loop.time()))

    def _release(self, slot_free_at: float) -> None:
        """Free a slot at virtual time ``slot_free_at`` and hand it to the first waiter still waiting."""
        self.running -= 1
        while self._queue and self.running < self.max_num_seqs:
            ticket, queued_at = self._queue.popleft()
            if not ticket.done():
                self.running += 1
                ticket.set_result(max(slot_free_at, queued_at))
        self._changed()


@dataclasses.dataclass
class Counters:
    """Monotonic counters since start or the last reset."""

    requests: int = 0
    completed: int = 0
    aborted: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: dict[str, int] = dataclasses.field(default_factory=dict)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)

    def error(self, kind: str) -> None:
        """Count one error response (or dropped connection) of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1


class ApiError(Exception):
    """An OpenAI-style error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """``{"error": {"message", "type", "param", "code"}}`` with the status code."""
        body = {
            "error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "BadRequestError", param=param)


@dataclasses.dataclass
class ParsedRequest:
    """What the simulator needs from a valid chat completion request."""

    images: list[bytes]
    prompt_text: str
    max_tokens: int | None

    @property
    def prompt_tokens(self) -> int:
        """Tokens the prompt would take (text at 4 characters a token plus a fixed count per image)."""
        return math.ceil(len(self.prompt_text) / CHARS_PER_TOKEN)


# --------------------------------------------------------------------------------------------------
# The simulator


class Simulator:
    """State and request handling; :meth:`app` builds the Starlette application."""

    def __init__(self, config: SimConfig, faults: Faults | None = None) -> None:
        self.config = config
        self.faults = faults or Faults()
        self.scheduler = Scheduler(config.max_num_seqs)
        self.counters = Counters()
        self.started_at = time.time()
        self.server: uvicorn.Server | None = None
        self._ocr_cache: OrderedDict[str, str] = OrderedDict()
        self._ocr_limit = asyncio.Semaphore(config.ocr_concurrency)

    # Endpoints ---------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/sim/stats", self.stats, methods=["GET"]),
                Route("/sim/faults", self.get_faults, methods=["GET"]),
                Route("/sim/faults", self.set_faults, methods=["POST"]),
                Route("/sim/reset", self.reset, methods=["POST"]),
                *AudioEndpoint(self).routes(),  # /v1/audio/transcriptions, /sim/audio/*
            ]
        )

    async def health(self, request: Request) -> Response:
        """Liveness, like vLLM's ``/health`` (200, empty body)."""
        return Response(status_code=200)

    async def models(self, request: Request) -> Response:
        """The single served model."""
        card = {
            "id": self.config.model,
            "object": "model",
            "created": int(self.started_at),
            "owned_by": "vllm",
            "root": self.config.model,
            "parent": None,
            "max_model_len": self.config.max_model_len,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def chat_completions(self, request: Request) -> Response:
        """Validate, apply faults, wait for a slot, answer. A client disconnect aborts the request."""
        self.counters.requests += 1
        try:
            parsed = self._parse(await request.body())
        except ApiError as exc:
            self.counters.error("invalid_request" if exc.status == 400 else "model_not_found")
            return exc.response()

        fault = self.faults.take(ERROR_FAULTS)
        if fault is not None:
            self.counters.error(fault)
            if fault == "drop":
                await self._drop_connection(request)
                return Response(status_code=500)  # never sent: the connection is gone
            return self._fault_error(fault, parsed).response()

        work = asyncio.ensure_future(self._complete(parsed))
        disconnect = asyncio.ensure_future(self._wait_disconnect(request))
        done, _ = await asyncio.wait({work, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            self.counters.aborted += 1
            return Response(status_code=499)  # nobody is listening any more
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect
        try:
            body = work.result()
        except ApiError as exc:
            self.counters.error("invalid_request")
            return exc.response()
        return JSONResponse(body)

    async def metrics(self, request: Request) -> Response:
        """Prometheus text: vLLM's queue gauges and token counters plus the simulator's own counters."""
        # vLLM's V1 engine labels its series with the engine index and the served model name.
        label = f'engine="0",model_name="{_escape_label(self.config.model)}"'
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{label}}} {float(self.scheduler.running)}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{label}}} {float(self.scheduler.waiting)}",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{label}}} {float(self.counters.prompt_tokens)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{label}}} {float(self.counters.completion_tokens)}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
        ]
        for reason in ("stop", "length"):
            count = self.counters.finished.get(reason, 0)
            lines.append(f'vllm:request_success_total{{finished_reason="{reason}",{label}}} {float(count)}')
        lines += [
            "# HELP sim_requests_total Chat completion requests received.",
            "# TYPE sim_requests_total counter",
            f"sim_requests_total{{{label}}} {float(self.counters.requests)}",
            "# HELP sim_requests_aborted_total Requests whose client disconnected before the answer.",
            "# TYPE sim_requests_aborted_total counter",
            f"sim_requests_aborted_total{{{label}}} {float(self.counters.aborted)}",
            "# HELP sim_request_errors_total Error answers and dropped connections, by kind.",
            "# TYPE sim_request_errors_total counter",
        ]
        for kind, count in sorted(self.counters.errors.items()):
            lines.append(f'sim_request_errors_total{{kind="{kind}",{label}}} {float(count)}')
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def stats(self, request: Request) -> Response:
        """Queue state, counters, busy/waiting time and the capacity formula's value."""
        return JSONResponse(self.stats_dict())

    def stats_dict(self) -> dict[str, Any]:
        """The body of ``GET /sim/stats``."""
        cfg = self.config
        tokens: float | None
        if cfg.tokens is not None or cfg.ocr == "hash":
            tokens = cfg.tokens if cfg.tokens is not None else DEFAULT_TOKENS
            basis = "fixed_tokens"
        elif self.counters.completed:
            tokens = self.counters.completion_tokens / self.counters.completed
            basis = "observed_mean_tokens"
        else:
            tokens, basis = None, "unknown_until_first_answer"
        capacity = cfg.capacity(tokens) if tokens is not None else None
        return {
            "model": cfg.model,
            "running": self.scheduler.running,
            "waiting": self.scheduler.waiting,
            "max_running_seen": self.scheduler.max_running_seen,
            "max_waiting_seen": self.scheduler.max_waiting_seen,
            "requests": self.counters.requests,
            "completed": self.counters.completed,
            "aborted": self.counters.aborted,
            "errors": sum(self.counters.errors.values()),
            "errors_by_kind": dict(self.counters.errors),
            "finished": dict(self.counters.finished),
            "prompt_tokens": self.counters.prompt_tokens,
            "completion_tokens": self.counters.completion_tokens,
            "busy_seconds": self.scheduler.busy_seconds(),
            "waiting_seconds": self.scheduler.waiting_seconds(),
            "started_at": self.started_at,
            "uptime_seconds": time.time() - self.started_at,
            "capacity_pages_per_s": capacity,
            "capacity_tokens_per_page": tokens,
            "capacity_basis": basis,
            "config": dataclasses.asdict(cfg),
            "faults": dataclasses.asdict(self.faults),
        }

    async def get_faults(self, request: Request) -> Response:
        """The armed faults."""
        return JSONResponse(dataclasses.asdict(self.faults))

    async def set_faults(self, request: Request) -> Response:
        """Replace the given fault fields (JSON object); answer with all faults."""
        try:
            values = json.loads(await request.body() or b"{}")
            if not isinstance(values, dict):
                raise ValueError("body must be a JSON object")
            candidate = dataclasses.replace(self.faults)
            candidate.update(values)
        except ValueError as exc:
            return _bad_request(str(exc)).response()
        self.faults = candidate
        return JSONResponse(dataclasses.asdict(self.faults))

    async def reset(self, request: Request) -> Response:
        """Clear faults and statistics (requests in flight keep their slots)."""
        self.faults = Faults()
        self.counters = Counters()
        self.scheduler.reset_times()
        self.started_at = time.time()
        return JSONResponse({"reset": True})

    # Request handling --------------------------------------------------------------------------------

    def _parse(self, raw: bytes) -> ParsedRequest:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad_request(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _bad_request("request body must be a JSON object")
        model = body.get("model") or self.config.model
        if model != self.config.model:
            raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", param="model")
        if body.get("stream"):
            raise _bad_request("stream=true is not supported by the simulator", "stream")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
            raise _bad_request("max_tokens must be an integer", "max_tokens")
        if max_tokens is not None and max_tokens < 1:
            raise _bad_request(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad_request("messages must be a non-empty list", "messages")
        images: list[bytes] = []
        texts: list[str] = []
        for message in messages:
            if not isinstance(message, dict) or "role" not in message:
                raise _bad_request("each message must be an object with a role", "messages")
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            if not isinstance(content, list):
                raise _bad_request("message content must be a string or a list of parts", "messages")
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif kind == "image_url":
                    images.append(_decode_image(part.get("image_url")))
                else:
                    raise _bad_request(f"unsupported content part: {str(part)[:80]}", "messages")
        if not images:
            raise _bad_request("the request has no image: the OCR model needs an image_url part", "messages")
        prompt_text = "".join(texts)
        if not prompt_text.strip():
            raise _bad_request("the request has no text prompt", "messages")
        parsed = ParsedRequest(images=images, prompt_text=prompt_text, max_tokens=max_tokens)
        prompt_tokens = self._prompt_tokens(parsed)
        limit = self.config.max_model_len
        if prompt_tokens >= limit or (max_tokens is not None and prompt_tokens + max_tokens > limit):
            raise _bad_request(_context_message(limit, prompt_tokens, max_tokens or 0))
        return parsed

    def _prompt_tokens(self, parsed: ParsedRequest) -> int:
        return parsed.prompt_tokens + self.config.image_tokens * len(parsed.images)

    def _fault_error(self, fault: str, parsed: ParsedRequest) -> ApiError:
        if fault == "overload_503":
            return ApiError(503, "The server is overloaded; please retry later.", "ServiceUnavailableError")
        if fault == "rate_limit_429":
            retry = str(self.config.retry_after_s)
            return ApiError(
                429,
                "Too many requests; please retry later.",
                "RateLimitError",
                headers={"Retry-After": retry},
            )
        limit = self.config.max_model_len
        completion = parsed.max_tokens or 4096
        prompt = max(self._prompt_tokens(parsed), limit + 1 - completion)
        return _bad_request(_context_message(limit, prompt, completion))

    async def _drop_connection(self, request: Request) -> None:
        """Close this request's TCP connection without answering (uvicorn then sends nothing)."""
        client = request.scope.get("client")
        if self.server is not None and client is not None:
            for protocol in list(self.server.server_state.connections):
                if getattr(protocol, "client", None) == tuple(client):
                    protocol.transport.close()
                    break
        await asyncio.sleep(0.01)  # let connection_lost run so the cycle knows it is disconnected

    @staticmethod
    async def _wait_disconnect(request: Request) -> None:
        """Return once the client has gone (the body is already read, so only a disconnect can come)."""
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    async def _complete(self, parsed: ParsedRequest) -> dict[str, Any]:
        cfg = self.config
        text = await self._answer_text(parsed.images[0])
        tokens = cfg.tokens if cfg.tokens is not None else math.ceil(len(text) / CHARS_PER_TOKEN)
        finish = "stop"
        output_fault = self.faults.take(OUTPUT_FAULTS)
        if output_fault == "truncate":
            text, tokens, finish = text[: len(text) // 2], max(0, tokens // 2), "length"
        elif output_fault == "repeat":
            line = text.splitlines()[0] if text.strip() else "the the the"
            text = "\n".join([line] * REPEAT_LINES)
            tokens, finish = math.ceil(len(text) / CHARS_PER_TOKEN), "length"
        elif output_fault == "empty":
            text, tokens = "", 0
        prompt_tokens = self._prompt_tokens(parsed)
        budget = parsed.max_tokens if parsed.max_tokens is not None else cfg.max_model_len - prompt_tokens
        if tokens > budget:
            text, tokens, finish = text[: budget * CHARS_PER_TOKEN], budget, "length"

        await self.scheduler.run(cfg.service_seconds(len(parsed.images), tokens))
        if self.faults.slow_ms > 0:
            await asyncio.sleep(self.faults.slow_ms / 1000.0)

        self.counters.completed += 1
        self.counters.prompt_tokens += prompt_tokens
        self.counters.completion_tokens += tokens
        self.counters.finished[finish] = self.counters.finished.get(finish, 0) + 1
        return {
            "id": f"chatcmpl-{secrets.token_hex(16)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": cfg.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "reasoning_content": None,
                        "tool_calls": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": prompt_tokens + tokens,
                "prompt_tokens_details": None,
            },
            "prompt_logprobs": None,
        }

    async def _answer_text(self, image: bytes) -> str:
        digest = hashlib.sha1(image, usedforsecurity=False).hexdigest()
        if self.config.ocr != "tesseract":
            tokens = self.config.tokens if self.config.tokens is not None else DEFAULT_TOKENS
            return _lorem_text(digest, tokens * CHARS_PER_TOKEN)
        cached = self._ocr_cache.get(digest)
        if cached is not None:
            self._ocr_cache.move_to_end(digest)
            return cached
        async with self._ocr_limit:
            text = await asyncio.get_running_loop().run_in_executor(None, _tesseract, image)
        self._ocr_cache[digest] = text
        if len(self._ocr_cache) > _OCR_CACHE_SIZE:
            self._ocr_cache.popitem(last=False)
        return text


# --------------------------------------------------------------------------------------------------
# Helpers


def _context_message(limit: int, prompt: int, completion: int) -> str:
    return (
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion."
    )


def _decode_image(image_url: object) -> bytes:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise _bad_request("image_url part without a url", "messages")
    if not url.startswith("data:image/"):
        raise _bad_request("the simulator only accepts data:image/...;base64 URLs", "messages")
    header, _, payload = url.partition(",")
    if not header.endswith(";base64") or not payload:
        raise _bad_request("image data URL must be base64 encoded", "messages")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_request("image data URL holds invalid base64", "messages") from None
    if not data.startswith(_IMAGE_MAGIC):
        raise _bad_request("image data is not a known image format", "messages")
    return data


def _lorem_text(digest: str, length: int) -> str:
    """``"Page <digest[:8]>"`` then lorem words (starting at a digest-derived word) up to ``length`` chars."""
    parts = [f"Page {digest[:8]}\n\n"]
    size = len(parts[0])
    index = int(digest[8:16], 16)
    while size < length:
        word = _LOREM[index % len(_LOREM)] + ("\n" if index % 12 == 11 else " ")
        parts.append(word)
        size += len(word)
        index += 1
    return "".join(parts)[: max(length, 0)]


def _tesseract(image: bytes) -> str:
    """Tesseract's plain-text reading of ``image`` (one thread, as the design notes require)."""
    import subprocess

    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    result = subprocess.run(
        ["tesseract", "-", "-"], input=image, capture_output=True, env=env, timeout=120, check=False
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")[-300:]
        raise ApiError(400, f"tesseract failed: {stderr}", "BadRequestError")
    return result.stdout.decode("utf-8", errors="replace").strip()


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.vllm_simulator",
        description="vLLM-like OpenAI-compatible server for tests and benchmarks (no GPU, simulated time).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000)
    add("--model", default=DEFAULT_MODEL, help="served model name (default %(default)s)")
    add("--max-num-seqs", type=int, default=16, help="requests running at once (default %(default)s)")
    add("--prefill-ms", type=float, default=40.0, help="slot time per image (default %(default)s)")
    add("--ms-per-token", type=float, default=0.5, help="slot time per output token (default %(default)s)")
    add("--tokens", type=int, default=None, help=f"fixed output tokens (hash default {DEFAULT_TOKENS})")
    add("--ocr", choices=["hash", "tesseract"], default="hash", help="answer text source (default hash)")
    add("--ocr-concurrency", type=int, default=max(1, os.cpu_count() or 1), help="parallel tesseract runs")
    add("--image-tokens", type=int, default=256, help="prompt tokens per image (default %(default)s)")
    add("--max-model-len", type=int, default=8192, help="context length (default %(default)s)")
    add("--retry-after-s", type=int, default=1, help="Retry-After of the 429 fault (default %(default)s)")
    for name in COUNTED_FAULTS:
        add(f"--{name.replace('_', '-')}", type=int, default=0, metavar="N", help=f"fault: next N get {name}")
    add("--slow-ms", type=float, default=0.0, help="fault: extra latency per answer, ms")
    add("--log-level", default="warning")
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, Faults]:
    """The simulator configuration and initial faults from parsed arguments."""
    if args.max_num_seqs < 1:
        raise SystemExit("--max-num-seqs must be >= 1")
    if args.ocr == "tesseract" and shutil.which("tesseract") is None:
        raise SystemExit("--ocr tesseract needs the tesseract binary on PATH")
    config = SimConfig(
        model=args.model,
        max_num_seqs=args.max_num_seqs,
        prefill_ms=args.prefill_ms,
        ms_per_token=args.ms_per_token,
        tokens=args.tokens,
        ocr=args.ocr,
        image_tokens=args.image_tokens,
        max_model_len=args.max_model_len,
        retry_after_s=args.retry_after_s,
        ocr_concurrency=args.ocr_concurrency,
    )
    faults = Faults()
    faults.update({name: getattr(args, name) for name in (*COUNTED_FAULTS, "slow_ms")})
    return config, faults


async def serve(config: SimConfig, faults: Faults, host: str, port: int, log_level: str = "warning") -> None:
    """Run the simulator until SIGTERM/SIGINT."""
    simulator = Simulator(config, faults)
    uv_config = uvicorn.Config(
        simulator.app(), host=host, port=port, log_level=log_level, access_log=False, backlog=4096
    )
    server = uvicorn.Server(uv_config)
    simulator.server = server
    capacity = simulator.stats_dict()["capacity_pages_per_s"]
    print(
        f"vllm simulator: model={config.model} max_num_seqs={config.max_num_seqs} "
        f"prefill_ms={config.prefill_ms} ms_per_token={config.ms_per_token} tokens={config.tokens} "
        f"ocr={config.ocr} capacity_pages_per_s={capacity} on http://{host}:{port}",
        flush=True,
    )
    await server.serve()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tests.support.vllm_simulator``."""
    args = build_parser().parse_args(argv)
    config, faults = config_from_args(args)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop  # uvicorn[standard] brings it; less CPU per request than the default loop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(config, faults, args.host, args.port, args.log_level))


if __name__ == "__main__":
    main()
