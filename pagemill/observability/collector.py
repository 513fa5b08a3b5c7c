"""The API's ``/metrics``: its own metrics (under ``pagemill up``, every process's) and the operations gauges,
read when scraped.

The gauges, by queue (ingest, cpu, gpu, webhooks) or component (database, broker, storage):
``pagemill_queue_depth``, ``pagemill_oldest_queued_age_seconds``, ``pagemill_queue_workers`` and
``pagemill_dependency_up``. They are read at scrape time (database, heartbeats, dependency checks), never
by a loop and never on the path of another request, and one reading serves every scrape for
``SNAPSHOT_TTL_S``: several Prometheus servers or a scrape storm cost one set of queries. A figure that
cannot be read (its store is down) is left out rather than shown as 0; ``pagemill_dependency_up`` says why.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pagemill.metrics import multiprocess_registry
from pagemill.observability.service import OperationsSnapshot, operations_snapshot
from pagemill.settings import get_settings

SNAPSHOT_TTL_S = 5.0


def snapshot_families(snapshot: OperationsSnapshot) -> list[Metric]:
    """The gauges of one snapshot."""
    depth = GaugeMetricFamily(
        "pagemill_queue_depth",
        "Work waiting on a queue: pages (cpu, gpu) or jobs (ingest) no worker has taken, webhook deliveries "
        "due (webhooks).",
        labels=["queue"],
    )
    age = GaugeMetricFamily(
        "pagemill_oldest_queued_age_seconds",
        "How long the longest-waiting work of a queue has waited (0 when none waits); pages: since their job "
        "was last served by a worker.",
        labels=["queue"],
    )
    workers = GaugeMetricFamily(
        "pagemill_queue_workers", "Live workers consuming a queue, from their heartbeats.", labels=["queue"]
    )
    up = GaugeMetricFamily(
        "pagemill_dependency_up", "Whether a dependency answers (1) or not (0).", labels=["component"]
    )
    for queue, state in snapshot.queues.items():
        if state.depth is not None:
            depth.add_metric([queue], state.depth)
        if state.oldest_age_s is not None:
            age.add_metric([queue], state.oldest_age_s)
        if state.workers is not None:
            workers.add_metric([queue], state.workers)
    for component, ok in snapshot.dependencies.items():
        up.add_metric([component], 1.0 if ok else 0.0)
    return [depth, age, workers, up]


class OperationsCollector(Collector):
    """Yields :func:`snapshot_families` of a snapshot at most ``ttl_s`` old (taken by ``read`` when older).
    Scrapes arriving while one reads wait for its snapshot instead of reading again."""

    def __init__(
        self,
        read: Callable[[], OperationsSnapshot],
        *,
        ttl_s: float = SNAPSHOT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: OperationsSnapshot | None = None
        self._taken_at = 0.0

    def snapshot(self) -> OperationsSnapshot:
        """The cached snapshot, read afresh when older than the TTL."""
        with self._lock:
            if self._snapshot is None or self._clock() - self._taken_at >= self._ttl_s:
                self._snapshot = self._read()
                self._taken_at = self._clock()
            return self._snapshot

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not read the database (the registry would call collect)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The gauges of the current snapshot."""
        return snapshot_families(self.snapshot())


@functools.cache
def operations_registry() -> CollectorRegistry:
    """This process's registry of the operations gauges (one collector, so one cache, per process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OperationsCollector(lambda: operations_snapshot(get_settings())))
    return registry


def exposition() -> bytes:
    """The text of ``/metrics``: this process's metrics (with ``PROMETHEUS_MULTIPROC_DIR`` set, as ``pagemill
    up`` sets it for its API and workers, the sum of every process writing there) and the operations
    gauges."""
    from pagemill.dead_letters.metrics import dead_letters_registry  # pagemill_dead_letters{category}

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    own = multiprocess_registry(folder) if folder else REGISTRY
    return (
        generate_latest(own)
        + generate_latest(operations_registry())
        + generate_latest(dead_letters_registry())
    )
