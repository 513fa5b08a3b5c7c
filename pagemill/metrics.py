"""Pagemill's own metrics: jobs, queues, pages, engines and webhook deliveries (names in docs/operations.md).

Counted where they happen: a job's submission in the API, its pages and its end mostly in workers (a cancel
or a cached job in the API). Workers serve theirs on ``worker.metrics_port`` (0: off), the API on
``/metrics`` with the gauges read at scrape time (pagemill.observability.collector). Prefork pools write
through prometheus_client's multiprocess mode: ``pagemill worker`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh folder before any worker process imports prometheus_client, and the main process serves the sum of
all processes. ``pagemill up`` gives its API and workers one such folder, so that the API serves them all.
No label ever holds a job or tenant id: one series per job would grow without end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)

PAGES = Counter("pagemill_pages_total", "Pages finished, by engine and outcome.", ["engine", "outcome"])
FALLBACKS = Counter(
    "pagemill_engine_fallbacks_total", "Pages handed to the next engine of the chain.", ["engine", "reason"]
)
PROCESSING_TIMEOUTS = Counter(
    "pagemill_processing_timeouts_total",
    "Pages or text-layer chunks that ran past their time limit (worker.time_limits), by kind of work.",
    ["kind"],
)
# The API serves the open dead letters as the gauge pagemill_dead_letters (pagemill.dead_letters.metrics).
DEAD_LETTERS_RECORDED = Counter(
    "pagemill_dead_letters_total",
    "Dead letters recorded (new, or open again after a replay failed the same way), by category.",
    ["category"],
)
JOBS_SUBMITTED = Counter(
    "pagemill_jobs_submitted_total",
    "Jobs accepted, by document kind (unknown: a URL not fetched yet).",
    ["kind"],
)
JOBS_COMPLETED = Counter(
    "pagemill_jobs_completed_total",
    "Jobs that reached a final state, by kind and outcome (succeeded, failed, cancelled; expired: results "
    "deleted later by retention or a purge).",
    ["kind", "outcome"],
)
JOB_DURATION = Histogram(
    "pagemill_job_duration_seconds",
    "From a job's submission to its end (succeeded, failed or cancelled), by document kind.",
    ["kind"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600),
)
QUEUE_WAIT = Histogram(
    "pagemill_queue_wait_seconds",
    "From a task's message being sent (or its countdown ending) to a worker starting it, by queue.",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
ENGINE_IN_FLIGHT = Gauge(
    "pagemill_engine_requests_in_flight",
    "Requests to a model server (vllm, remote-openai) waiting for their answer now.",
    ["engine"],
    multiprocess_mode="livesum",
)
WEBHOOK_DELIVERIES = Counter(
    "pagemill_webhook_deliveries_total",
    "Webhook delivery attempts by what they left the delivery in: succeeded, failed (another attempt is "
    "scheduled) or dead (none is).",
    ["outcome"],
)


def serve(port: int, multiprocess_dir: str | None) -> None:
    """Serve this worker's metrics on ``port`` (summed over its processes in multiprocess mode). A port
    already taken is logged, not raised: the worker works on without serving metrics."""
    try:
        if multiprocess_dir:
            start_http_server(port, registry=multiprocess_registry(multiprocess_dir))
        else:
            start_http_server(port)
    except OSError as exc:
        log.warning("worker metrics not served: port %d: %s", port, exc)


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry of the sum of every process's metrics in ``path``; gauges of processes that ended (a pool
    process killed or replaced) are dropped at each collection, counters stay."""
    registry = CollectorRegistry()
    _LiveProcessesCollector(registry, path=path)
    return registry


class _LiveProcessesCollector(MultiProcessCollector):
    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        super().__init__(registry, path=path)  # type: ignore[no-untyped-call]
        self.folder = path

    def collect(self) -> Iterable[Metric]:
        forget_ended_processes(self.folder)
        metrics: Iterable[Metric] = super().collect()  # type: ignore[no-untyped-call]
        return metrics


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")


def forget_ended_processes(path: str) -> list[int]:
    """Remove the live-gauge files (in-flight requests) of processes that no longer run on this host; their
    pids. A process that exits cleanly cannot always say so itself (SIGKILL, the OOM killer)."""
    ended: set[int] = set()
    for file in Path(path).glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.match(file.name)
        if match and not _running(int(match.group(1))):
            ended.add(int(match.group(1)))
    for pid in ended:
        with contextlib.suppress(FileNotFoundError):  # another scrape removed it first
            mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return sorted(ended)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
