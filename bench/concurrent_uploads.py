"""Concurrent submissions: 10, 20 and 50 clients each posting ~1 MB PDFs at once (``python -m bench
concurrent_uploads``).

Embedded: ``pagemill up`` (SQLite, local blobs, SQLite broker, its own worker), an enterprise key.
Distributed: ``pagemill api`` + ``pagemill worker`` on Postgres, Redis and moto S3. Every client thread
keeps one HTTP connection and posts ``ROUNDS`` documents back to back; all clients start together. Reported:
p50/p95/max of the submission latency (POST sent to answer read) and the answers counted by kind: 202,
503 with Retry-After (load shed, allowed), and everything that must never happen (500, any other status,
503 without Retry-After, a reset or a client timeout). Between levels the queue drains, so each level
starts with an idle worker.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx

from bench.common import fmt, log, run_and_record, run_stamp, table, verdict
from bench.stacks import auth_headers, create_key, distributed_env_stack, migrate, temp_data_dir
from tests.support.documents import make_padded_pdf
from tests.support.services import free_port, pagemill_api, pagemill_process, pagemill_worker, wait_http_ok

LEVELS = (10, 20, 50)
ROUNDS = 3
DOCUMENT_BYTES = 1_000_000
CLIENT_TIMEOUT_S = 120.0
GOOD = "202"
SHED = "503 + Retry-After"


@dataclass
class Attempt:
    """One POST: how long it took and what came back."""

    seconds: float
    outcome: str


def classify(response: httpx.Response) -> str:
    """The outcome of an answered request: 202, 503 + Retry-After, or the status with its error code."""
    if response.status_code == 202:
        return GOOD
    if response.status_code == 503 and response.headers.get("retry-after"):
        return SHED
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = response.text[:40]
    return f"{response.status_code} {code}"


def post_documents(
    base_url: str, key: str, documents: list[bytes], clients: int, rounds: int = ROUNDS
) -> list[Attempt]:
    """``clients`` threads, each posting ``rounds`` documents over its own connection, started together."""
    attempts: list[Attempt] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        body = documents[index % len(documents)]
        with httpx.Client(base_url=base_url, headers=auth_headers(key), timeout=CLIENT_TIMEOUT_S) as http:
            start.wait()
            for round_number in range(rounds):
                started = time.perf_counter()
                try:
                    response = http.post(
                        "/api/v1/documents",
                        files={"file": (f"c{index}-r{round_number}.pdf", body, "application/pdf")},
                        data={"ocr_mode": "text_layer"},
                    )
                    outcome = classify(response)
                except httpx.TimeoutException:
                    outcome = "client timeout"
                except httpx.TransportError as exc:  # reset, refused, closed mid-request
                    outcome = f"transport error ({type(exc).__name__})"
                with lock:
                    attempts.append(Attempt(time.perf_counter() - started, outcome))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return attempts


def drain(base_url: str, key: str, timeout: float = 600.0) -> None:
    """Wait until no job of the bench tenant is queued or running."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, headers=auth_headers(key), timeout=30) as http:
        while time.monotonic() < deadline:
            busy = 0
            for state in ("queued", "running"):
                response = http.get("/api/v1/jobs", params={"state": state, "limit": 1})
                busy += len(response.json()["items"])
            if not busy:
                return
            time.sleep(1.0)
    log("concurrent_uploads: the queue did not drain in time; the next level starts with a busy worker")


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank) of ``values``; nan for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def measure(
    label: str, base_url: str, key: str, documents: list[bytes], levels: tuple[int, ...]
) -> list[list[str]]:
    """One table row per level."""
    rows = []
    post_documents(base_url, key, documents[:2], 2, 1)  # warm-up: imports, first connections
    drain(base_url, key)
    for clients in levels:
        began = time.perf_counter()
        attempts = post_documents(base_url, key, documents, clients)
        elapsed = time.perf_counter() - began
        counts = collections.Counter(attempt.outcome for attempt in attempts)
        seconds = [attempt.seconds for attempt in attempts]
        accepted = [attempt.seconds for attempt in attempts if attempt.outcome == GOOD]
        bad = sum(n for outcome, n in counts.items() if outcome not in (GOOD, SHED))
        log(f"  {label} {clients} clients: {dict(counts)} p50 {statistics.median(seconds):.2f}s")
        rows.append(
            [
                label,
                str(clients),
                str(len(attempts)),
                fmt(percentile(seconds, 0.5), 2),
                fmt(percentile(seconds, 0.95), 2),
                fmt(max(seconds), 2),
                fmt(percentile(accepted, 0.95), 2),
                fmt(counts[GOOD] / elapsed, 1),
                ", ".join(f"{outcome}: {n}" for outcome, n in sorted(counts.items())),
                verdict(bad == 0),
            ]
        )
        drain(base_url, key)
    return rows


@contextlib.contextmanager
def embedded_up(env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """``pagemill up`` on a free port with a fresh enterprise key; the base URL and the key."""
    migrate(env)
    key = create_key(env)
    port = free_port()
    proc = pagemill_process(["up", "--host", "127.0.0.1", "--port", str(port)], env, name="up")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base_url}/api/v1/health/ready", 90, handle=proc)
        yield base_url, key
    finally:
        proc.stop(timeout=40)


@contextlib.contextmanager
def distributed(env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """``pagemill api`` and ``pagemill worker`` (concurrency 2) on Postgres, Redis and S3."""
    migrate(env)
    key = create_key(env)
    with (
        pagemill_worker(env, queues="ingest,cpu,gpu", concurrency=2, timeout=90),
        pagemill_api(env, timeout=60) as (_, base_url),
    ):
        yield base_url, key


def run(levels: tuple[int, ...] = LEVELS, modes: tuple[str, ...] = ("embedded", "distributed")) -> str:
    """Measure the embedded (and distributed) stack; return the Markdown block."""
    rows: list[list[str]] = []
    with temp_data_dir() as workdir:
        documents = [
            make_padded_pdf(
                workdir / f"doc-{i}.pdf", [f"document {i}", "second page"], DOCUMENT_BYTES
            ).read_bytes()
            for i in range(max(levels))
        ]
        # INFO, the default: the access log is part of a request's cost, and Celery logs "ready." at INFO.
        # The clients repeat a few documents: with the result cache on, the worker would read almost none.
        base = {"PAGEMILL_LOG_LEVEL": "INFO", "PAGEMILL_CACHE__ENABLED": "false"}
        if "embedded" in modes:
            with embedded_up({**base, "PAGEMILL_DATA_DIR": str(workdir / "embedded")}) as (url, key):
                rows += measure("embedded (`pagemill up`)", url, key, documents, levels)
        if "distributed" in modes:
            services, env = distributed_env_stack()
            with (
                services,
                distributed({**base, **env, "PAGEMILL_DATA_DIR": str(workdir / "dist")}) as (url, key),
            ):
                rows += measure("distributed (Postgres, Redis, S3)", url, key, documents, levels)
    header = [
        "stack",
        "clients",
        "requests",
        "p50 s",
        "p95 s",
        "max s",
        "p95 of 202s s",
        "202/s",
        "answers",
        "no 500, reset or timeout",
    ]
    return (
        f"### Concurrent submissions (`python -m bench concurrent_uploads`)\n\n{run_stamp()}\n"
        f"Each client posts {ROUNDS} PDFs of {DOCUMENT_BYTES / 1e6:.1f} MB (2 text pages, "
        "`ocr_mode=text_layer`) back to back over one connection, all clients starting together, "
        "enterprise key; latency from the "
        "POST sent to the answer read. The worker runs beside the API (2 cores shared) and the queue drains "
        "between levels.\n\n" + table(header, rows)
    )


def main(argv: list[str] | None = None) -> str:
    """``python -m bench.concurrent_uploads``."""
    parser = argparse.ArgumentParser(prog="python -m bench.concurrent_uploads", description=__doc__)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="client counts, e.g. 10,20,50")
    parser.add_argument("--no-distributed", action="store_true", help="only the embedded stack")
    args = parser.parse_args(argv)
    levels = tuple(int(part) for part in args.levels.split(",") if part.strip())
    return run_and_record(
        "concurrent_uploads",
        lambda: run(levels, ("embedded",) if args.no_distributed else ("embedded", "distributed")),
    )


if __name__ == "__main__":
    main()
