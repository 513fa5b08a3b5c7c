"""Event latency: a page finished in a worker → its event at an SSE client, with 100 streams open.

``python -m bench event_latency`` (``--clients``, ``--pages``; ``--no-distributed``: embedded only)

An embedded stack (and a distributed one: Postgres, Redis, moto S3) with `events.page_events=always` (one
job.page_completed event per page). 100 clients, all in this process (asyncio, httpx), each submit one
born-digital PDF of a few pages, open its job's SSE stream (`GET /api/v1/jobs/{id}/events`) and read it to
the job's final event. The jobs queue behind each other, so all streams stay open while the worker (2
processes) reads pages as fast as it can: the API serves 100 streams on the same 2 cores. Latency of an
event = the time its client read it minus the event's `time` (set by the worker in the transaction that
saved the page; one clock). Every stream must end with job.succeeded and hold every seq exactly once.
Target (performance.md 7): p95 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path

import httpx

from bench.born_digital import make_document, stack_envs
from bench.common import fmt, log, run_and_record, run_stamp, table, verdict
from bench.concurrent_uploads import percentile
from bench.stacks import running_stack

CLIENTS = 100
PAGES = 12
TARGET_P95_MS = 250.0
JOB_TIMEOUT_S = 300.0


async def _client(
    client: httpx.AsyncClient, path: Path, start: asyncio.Event, latencies: dict[str, list[float]]
) -> list[int]:
    """Submit, stream the job's events to the end; the seqs read, in order."""
    await start.wait()
    content = path.read_bytes()
    response = await _retrying(
        lambda: client.post(
            "/api/v1/documents", files={"file": (path.name, content)}, data={"ocr_mode": "auto"}
        )
    )
    job_id = response.json()["id"]
    seqs: list[int] = []
    event_type = ""
    while True:
        # A burst of streams over api.max_concurrent_requests is answered 503 + Retry-After until earlier
        # ones have started (an EventSource retries the same way).
        request = client.build_request("GET", f"/api/v1/jobs/{job_id}/events", timeout=JOB_TIMEOUT_S)
        stream = await client.send(request, stream=True)
        if stream.status_code != 503:
            break
        await stream.aclose()
        await asyncio.sleep(float(stream.headers.get("Retry-After", "1")))
    opened = time.time()
    try:
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            if line.startswith("id:"):
                seqs.append(int(line[3:].strip()))
            elif line.startswith("event:"):
                event_type = line[6:].strip()
            elif line.startswith("data:"):
                received = time.time()
                body = json.loads(line[5:].strip())
                sent = datetime.fromisoformat(body["time"].replace("Z", "+00:00")).timestamp()
                # Events written before the stream was open are a replay, not live latency.
                kind = event_type if sent >= opened else "replayed"
                latencies.setdefault(kind, []).append((received - sent) * 1000)
                if event_type in ("job.succeeded", "job.failed", "job.cancelled"):
                    if event_type != "job.succeeded":
                        raise RuntimeError(f"job {job_id} ended {event_type}")
                    break
    finally:
        await stream.aclose()
    return seqs


async def _retrying(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """``send`` again while the API answers 503 (over its admission limit), after its Retry-After."""
    while True:
        response = await send()
        if response.status_code != 503:
            response.raise_for_status()
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def _measure(base_url: str, key: str, path: Path, clients: int) -> tuple[dict[str, list[float]], int]:
    latencies: dict[str, list[float]] = {}
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        start = asyncio.Event()
        tasks = [asyncio.create_task(_client(client, path, start, latencies)) for _ in range(clients)]
        start.set()
        results = await asyncio.gather(*tasks)
    for seqs in results:
        if seqs != list(range(1, len(seqs) + 1)):
            raise RuntimeError(f"a stream skipped or repeated events: {seqs}")
    return latencies, sum(len(seqs) for seqs in results)


def _one_stack(env: Mapping[str, str], path: Path, clients: int) -> tuple[dict[str, list[float]], int, float]:
    with running_stack({**env, "PAGEMILL_EVENTS__PAGE_EVENTS": "always"}) as stack:
        stack.run_job(path, JOB_TIMEOUT_S, ocr_mode="auto")  # warm-up
        key = stack.client.headers["Authorization"].removeprefix("Bearer ")
        started = time.perf_counter()
        latencies, events = asyncio.run(_measure(stack.base_url, key, path, clients))
        return latencies, events, time.perf_counter() - started


def run(clients: int = CLIENTS, pages: int = PAGES, distributed: bool = True) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-el-") as tmp:
        path = make_document(Path(tmp) / f"doc-{pages}.pdf", pages)
        for label, env in stack_envs("event_latency", distributed, {}):
            latencies, events, seconds = _one_stack(env, path, clients)
            pages_ms = latencies.get("job.page_completed", [])
            every = [value for kind, values in latencies.items() if kind != "replayed" for value in values]
            p95 = percentile(pages_ms, 0.95)
            log(f"  {label}: {events} events in {seconds:.1f}s, page events p95 {p95:.0f} ms")
            rows.append(
                [
                    label,
                    str(clients),
                    f"{events:,}",
                    fmt(seconds, 1),
                    fmt(percentile(pages_ms, 0.5), 0),
                    fmt(p95, 0),
                    fmt(percentile(pages_ms, 0.99), 0),
                    fmt(percentile(every, 0.95), 0),
                    verdict(p95 <= TARGET_P95_MS),
                ]
            )
    header = [
        "stack",
        "streams",
        "events read",
        "seconds",
        "page event p50 ms",
        "p95 ms",
        "p99 ms",
        "all live events p95 ms",
        f"target p95 <= {TARGET_P95_MS:.0f} ms",
    ]
    return "\n".join(
        [
            "### Event latency: page finished → SSE event (`python -m bench event_latency`)",
            "",
            run_stamp(),
            f"{clients} clients at once, each: POST a {pages}-page born-digital PDF, read its job's SSE "
            "stream to job.succeeded (`events.page_events=always`: one event per page). Worker concurrency "
            "2, one API process; latency = read by the client minus the event's `time` (written by the "
            "worker as it saved the page); events written before their stream opened (replayed on "
            "connect) are left out. Every stream checked for every seq exactly once, in order.",
            "",
            table(header, rows),
        ]
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.event_latency", description=__doc__)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--no-distributed", action="store_true", help="Skip the Postgres/Redis/S3 stack.")
    args = parser.parse_args(argv)
    return run_and_record("event_latency", lambda: run(args.clients, args.pages, not args.no_distributed))


if __name__ == "__main__":
    main()
