"""Worker metrics: pages read, engine fallbacks and retries, as Prometheus counters.

Workers serve them on ``worker.metrics_port`` (0: off). Prefork pools write through prometheus_client's
multiprocess mode: ``pagemill worker`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before any
worker process imports prometheus_client, and the main process serves the sum of all processes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

PAGES = Counter("pagemill_pages_total", "Pages finished, by engine and outcome.", ["engine", "outcome"])
FALLBACKS = Counter(
    "pagemill_engine_fallbacks_total", "Pages handed to the next engine of the chain.", ["engine", "reason"]
)


def serve(port: int, multiprocess_dir: str | None) -> None:
    """Serve this worker's metrics on ``port`` (summed over its processes in multiprocess mode)."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        start_http_server(port, registry=registry)
    else:
        start_http_server(port)
