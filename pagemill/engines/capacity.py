"""How many pages a GPU worker keeps in flight at its model server.

A vLLM server runs at most ``--max-num-seqs`` requests at once; the rest wait in its queue. To keep every
slot busy, a worker must have more than that in flight: while one answer is stored and the next page is
rendered and encoded, the server should already have the following request queued. Twice the server's
slots does it (docs/benchmarks.md: 32 in flight kept a 32-slot server 0.949 busy, 64 kept it 0.990 busy).

Order of choice (:func:`decide_requests_in_flight`, once at GPU-worker start):

1. ``--concurrency`` given to the worker, then ``requests_in_flight`` when set: used as they are;
2. ``max_num_seqs`` when set (the operator states the server's ``--max-num-seqs``): twice it;
3. the server's ``/metrics``: while ``vllm:num_requests_waiting`` is above zero, ``vllm:num_requests_running``
   is as many as the server runs at once (its ``max_num_seqs``, or fewer when its KV cache is the limit,
   which is then the number that matters): twice it. vLLM publishes no gauge of ``max_num_seqs`` itself,
   so an idle server tells nothing;
4. otherwise :data:`FALLBACK_IN_FLIGHT`.

The chosen number is kept for the process (:func:`requests_in_flight`): the engine's connection pool and
the database pool are sized from it, as the worker's thread pool is.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pagemill.settings import OpenAiEngineSettings

log = logging.getLogger(__name__)

IN_FLIGHT_PER_SLOT = 2
"""Pages in flight per request the server runs at once."""
FALLBACK_IN_FLIGHT = 64
"""In flight when the server's capacity is unknown: twice a 32-slot server, and few enough threads for one
worker process; set ``max_num_seqs`` for larger servers."""
METRICS_TIMEOUT_S = 5.0
METRICS_SAMPLES = 3
METRICS_INTERVAL_S = 0.2

_SAMPLE = re.compile(r"^(vllm:num_requests_(?:running|waiting))(?:\{[^}]*\})?\s+(\S+)\s*$", re.MULTILINE)

_lock = threading.Lock()
_decided: int | None = None


@dataclass(frozen=True, slots=True)
class InFlightChoice:
    """Pages to keep in flight and why (``--concurrency``, ``requests_in_flight``, ``max_num_seqs``,
    ``metrics`` or ``fallback``)."""

    requests: int
    source: str
    server_slots: int | None = None

    def describe(self) -> str:
        """One line for the worker's start-up log."""
        if self.server_slots is not None:
            return (
                f"{self.requests} pages in flight ({IN_FLIGHT_PER_SLOT} x {self.server_slots} server slots "
                f"from {self.source})"
            )
        return f"{self.requests} pages in flight (from {self.source})"


@dataclass(frozen=True, slots=True)
class ServerLoad:
    """The queue gauges of a vLLM server's ``/metrics``, summed over its engines."""

    running: float
    waiting: float


def parse_server_load(metrics: str) -> ServerLoad | None:
    """``vllm:num_requests_running`` and ``..._waiting`` from Prometheus text (every label set summed: a
    data-parallel server reports one per engine); None when the server reports neither."""
    totals: dict[str, float] = {}
    for name, value in _SAMPLE.findall(metrics):
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    if not totals:
        return None
    return ServerLoad(
        running=totals.get("vllm:num_requests_running", 0.0),
        waiting=totals.get("vllm:num_requests_waiting", 0.0),
    )


def server_slots_seen(
    settings: OpenAiEngineSettings,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """How many requests the server runs at once, as its ``/metrics`` shows while requests wait; None when
    no sample had requests waiting, or the server cannot be asked. Never raises."""
    if not settings.base_url:
        return None
    root = settings.base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    seen: int | None = None
    try:
        with httpx.Client(transport=transport, headers=headers, timeout=METRICS_TIMEOUT_S) as client:
            for sample in range(METRICS_SAMPLES):
                if sample:
                    sleep(METRICS_INTERVAL_S)
                response = client.get(f"{root}/metrics")
                if response.status_code != 200:
                    return seen
                load = parse_server_load(response.text)
                if load is not None and load.waiting > 0 and load.running >= 1:
                    # A sample taken between two scheduler steps may show a slot not yet refilled.
                    seen = max(seen or 0, int(load.running))
    except httpx.HTTPError as exc:
        log.info("server capacity: %s/metrics not readable (%s)", root, type(exc).__name__)
    return seen


def choose_requests_in_flight(
    settings: OpenAiEngineSettings,
    *,
    concurrency: int | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> InFlightChoice:
    """The pages a GPU worker should keep in flight at ``settings``' server (see the module docstring);
    ``concurrency`` is the worker's ``--concurrency``. Asks the server's ``/metrics`` only when neither
    number is configured."""
    if concurrency is not None:
        return InFlightChoice(concurrency, "--concurrency")
    if settings.requests_in_flight is not None:
        return InFlightChoice(settings.requests_in_flight, "requests_in_flight")
    if settings.max_num_seqs is not None:
        return InFlightChoice(
            IN_FLIGHT_PER_SLOT * settings.max_num_seqs, "max_num_seqs", settings.max_num_seqs
        )
    slots = server_slots_seen(settings, transport=transport, sleep=sleep)
    if slots is not None:
        return InFlightChoice(IN_FLIGHT_PER_SLOT * slots, "metrics", slots)
    return InFlightChoice(FALLBACK_IN_FLIGHT, "fallback")


def decide_requests_in_flight(
    settings: OpenAiEngineSettings,
    *,
    concurrency: int | None = None,
    transport: httpx.BaseTransport | None = None,
) -> InFlightChoice:
    """Choose as :func:`choose_requests_in_flight` does and keep the number for this process, so that
    :func:`requests_in_flight` (connection and database pools) agrees with the worker's thread pool."""
    global _decided
    choice = choose_requests_in_flight(settings, concurrency=concurrency, transport=transport)
    with _lock:
        _decided = choice.requests
    log.info("GPU worker: %s", choice.describe())
    return choice


def requests_in_flight(settings: OpenAiEngineSettings) -> int:
    """Pages this process may have in flight: what :func:`decide_requests_in_flight` chose at start, else
    the configured numbers (``requests_in_flight``, twice ``max_num_seqs``), else the fallback. No I/O."""
    with _lock:
        decided = _decided
    if decided is not None:
        return decided
    if settings.requests_in_flight is not None:
        return settings.requests_in_flight
    if settings.max_num_seqs is not None:
        return IN_FLIGHT_PER_SLOT * settings.max_num_seqs
    return FALLBACK_IN_FLIGHT


def forget_decision() -> None:
    """Forget the number chosen at start (tests)."""
    global _decided
    with _lock:
        _decided = None
