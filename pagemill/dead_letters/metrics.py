"""The API's ``pagemill_dead_letters{category}`` gauge: open dead letters, read from the database when
scraped (one query per ``ttl_s`` at most, whoever scrapes), never on the path of another request.

Workers count the dead letters they record in the counter ``pagemill_dead_letters_total`` (pagemill.metrics);
this gauge is the state: how many are open now (not replayed; their job not expired), every category listed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pagemill.db import autocommit_scope
from pagemill.dead_letters import service

log = logging.getLogger(__name__)

TTL_S = 5.0


def read_open_counts() -> dict[str, int]:
    """Open dead letters per category, from the database."""
    with autocommit_scope() as session:
        return service.open_counts(session)


class OpenDeadLetters(Collector):
    """Yields the gauge from counts at most ``ttl_s`` old. A database that does not answer leaves the gauge
    out of the scrape (``pagemill_dependency_up`` says why) rather than failing it or showing 0."""

    def __init__(
        self,
        read: Callable[[], dict[str, int]] = read_open_counts,
        *,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] | None = None
        self._read_at = 0.0

    def counts(self) -> dict[str, int] | None:
        """The cached counts, read afresh when older than the TTL; None when they cannot be read."""
        with self._lock:
            if self._counts is None or self._clock() - self._read_at >= self._ttl_s:
                try:
                    self._counts = self._read()
                except Exception:
                    log.warning("dead letter counts not read for /metrics", exc_info=True)
                    self._counts = None
                self._read_at = self._clock()
            return self._counts

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not read the database (a registry would call collect)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The gauge, one sample per category."""
        counts = self.counts()
        if counts is None:
            return []
        gauge = GaugeMetricFamily(
            "pagemill_dead_letters",
            "Open dead letters (not replayed, their job not expired), by category.",
            labels=["category"],
        )
        for category, count in sorted(counts.items()):
            gauge.add_metric([category], count)
        return [gauge]


@functools.cache
def dead_letters_registry() -> CollectorRegistry:
    """This process's registry of the gauge (one collector, so one cache, per process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OpenDeadLetters())
    return registry
