"""The worker's Celery app: tasks registered, per-process resources reset after fork, stalled-job sweeper."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import setup_logging, worker_process_init, worker_ready, worker_shutdown

from pagemill.db import reset_engine
from pagemill.logging import configure_logging
from pagemill.queue import get_celery
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store

log = logging.getLogger(__name__)

app = get_celery()
import workers.tasks.events  # noqa: E402  (registers the tasks)
import workers.tasks.jobs  # noqa: E402,F401

_stop_sweeper = threading.Event()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # Engines and clients are per process: a forked child must not share its parent's sockets.
    reset_engine()
    get_blob_store.cache_clear()
    # Tesseract oversubscribes cores unless told to use one thread per process.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")


@setup_logging.connect
def _logging(**_: Any) -> None:
    # Connecting here stops Celery from installing its own handlers: one format (ours) for API and workers,
    # and no line printed twice.
    configure_logging(get_settings())


@worker_ready.connect
def _start_metrics(**_: Any) -> None:
    port = get_settings().worker.metrics_port
    if port:
        from pagemill.metrics import serve

        serve(port, os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    threading.Thread(target=_sweep_forever, name="pagemill-sweeper", daemon=True).start()


@worker_ready.connect
def _start_pool_watchdog(sender: Any = None, **_: Any) -> None:
    from workers import pool_watchdog

    pool_watchdog.start(sender)


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    from workers import pool_watchdog

    _stop_sweeper.set()
    pool_watchdog.stop()


def _sweep_forever() -> None:
    from pagemill.jobs.sweeper import sweep_stalled_jobs

    interval = get_settings().worker.sweep_interval_s
    while not _stop_sweeper.wait(interval):
        try:
            sweep_stalled_jobs()
        except Exception:  # the sweeper must outlive a database blip
            log.exception("stalled-job sweep failed")
