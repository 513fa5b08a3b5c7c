"""The worker's Celery app: tasks registered, per-process resources reset after fork, stalled-job sweeper,
metrics and heartbeat, and each task's log context (task id, then job and tenant as the task binds them)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from pagemill import logging as pagemill_logging
from pagemill.db import reset_engine
from pagemill.logging import configure_logging
from pagemill.observability.heartbeats import Heartbeat, heartbeat_store
from pagemill.observability.job_metrics import observe_queue_wait
from pagemill.queue import get_celery
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store

log = logging.getLogger(__name__)

app = get_celery()
import workers.tasks.events  # noqa: E402  (registers the tasks)
import workers.tasks.jobs  # noqa: E402,F401

_stop_sweeper = threading.Event()
_heartbeat: list[Heartbeat] = []


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


@task_prerun.connect
def _task_started(task_id: str = "", task: Any = None, **_: Any) -> None:
    # Each task starts with a clean context: a pool process or thread runs one task after another.
    pagemill_logging.clear()
    pagemill_logging.bind(task_id=task_id, task=getattr(task, "name", None))
    if task is not None:
        observe_queue_wait(task.request)


@task_postrun.connect
def _task_ended(**_: Any) -> None:
    pagemill_logging.clear()


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    controller = getattr(sender, "controller", None)
    queues = (getattr(sender, "app", None) or app).amqp.queues.consume_from or {}
    heartbeat = Heartbeat(
        heartbeat_store(settings),
        node=str(getattr(sender, "hostname", None) or f"celery@{os.getpid()}"),
        queues=list(queues),
        pool=_pool_name(getattr(controller, "pool", None)),
        concurrency=getattr(controller, "concurrency", None),
        interval_s=settings.worker.heartbeat_interval_s,
    )
    heartbeat.start()
    _heartbeat.append(heartbeat)


def _pool_name(pool: Any) -> str:
    """prefork, threads, solo...: Celery's pool classes are all named TaskPool; modules tell them apart."""
    name = type(pool).__module__.rsplit(".", 1)[-1]
    return {"thread": "threads"}.get(name, name)


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
    for heartbeat in _heartbeat:
        heartbeat.stop()


def _sweep_forever() -> None:
    from pagemill.jobs.sweeper import sweep_stalled_jobs

    interval = get_settings().worker.sweep_interval_s
    while not _stop_sweeper.wait(interval):
        try:
            sweep_stalled_jobs()
        except Exception:  # the sweeper must outlive a database blip
            log.exception("stalled-job sweep failed")
