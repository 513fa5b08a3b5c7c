"""The Celery app, its queues, and enqueue-after-commit.

Messages carry ids only; the database is the truth. Tasks are sent by name after the transaction that made
their work visible commits, so a worker never sees an id whose row is not there yet.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Celery, Task
from kombu.entity import Exchange, Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from pagemill.settings import Settings, get_settings

log = logging.getLogger(__name__)

INGEST_QUEUE = "ingest"
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
# Event relay and webhook deliveries: consumed by a worker of its own, so they never wait behind page work.
WEBHOOKS_QUEUE = "webhooks"
ALL_QUEUES = (INGEST_QUEUE, CPU_QUEUE, GPU_QUEUE, WEBHOOKS_QUEUE)

INGEST_JOB = "pagemill.ingest_job"
# One unit of page work on a queue: the worker asks the database which pages to read (pagemill.jobs.claims).
READ_PAGES = "pagemill.read_pages"
# The page task of earlier versions (its message named the job and pages); still consumed after an upgrade.
PROCESS_PAGES = "pagemill.process_pages"
SWEEP_STALLED = "pagemill.sweep_stalled_jobs"
# Hand unrelayed events to their sinks (webhook deliveries, NATS): pagemill.events.relay.
RELAY_EVENTS = "pagemill.relay_events"
# One attempt of one webhook delivery: pagemill.webhooks.delivery.
DELIVER_WEBHOOK = "pagemill.deliver_webhook"

TASK_ROUTES = {
    INGEST_JOB: {"queue": INGEST_QUEUE},
    READ_PAGES: {"queue": CPU_QUEUE},
    PROCESS_PAGES: {"queue": CPU_QUEUE},
    RELAY_EVENTS: {"queue": WEBHOOKS_QUEUE},
    DELIVER_WEBHOOK: {"queue": WEBHOOKS_QUEUE},
}


class QueueKeepingTask(Task):  # type: ignore[misc]  # Celery ships without type hints
    """A task whose retries go back to the queue its message came from, on every broker.

    Celery re-publishes a retry with the delivery's exchange and routing key but the task's own route
    (TASK_ROUTES sends read_pages to ``cpu``). The SQLAlchemy transport keeps exchange bindings in the
    memory of the process that declared them, so a prefork child, forked before its parent declared the
    ``gpu`` queue, published a ``gpu`` retry to an exchange it did not know and kombu dropped it (Redis
    only found the binding because a gpu worker had stored it there). Naming the queue makes the publisher
    declare that queue, its exchange and binding first, the same on both brokers.
    """

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Retry as Celery does, to the queue the current message was delivered from."""
        if "queue" not in options:
            origin = (self.request.delivery_info or {}).get("routing_key")
            if origin in ALL_QUEUES:
                options["queue"] = origin
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)


def make_celery(settings: Settings) -> Celery:
    """Build the Celery app for the configured broker with the reliability settings of reliability.md."""
    broker_url = settings.broker_url
    app = Celery("pagemill", broker=broker_url, set_as_current=False, task_cls=QueueKeepingTask)
    from celery.signals import before_task_publish

    from pagemill.observability.job_metrics import stamp_sent_at

    # Every message carries the time it was sent: the worker observes its queue wait (task_prerun).
    before_task_publish.connect(stamp_sent_at, weak=False, dispatch_uid="pagemill-stamp-sent-at")
    transport_options: dict[str, Any] = {}
    if broker_url.startswith(("redis://", "rediss://")):
        transport_options = {
            "visibility_timeout": settings.broker.visibility_timeout_s,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
        }
    elif broker_url.startswith("sqla+"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # kombu's transport, made cheap to poll (a hop of a job waits for the poll) and bounded on disk.
        from pagemill import embedded_broker

        embedded_broker.install()
        # Its options go to create_engine: a connection factory puts the broker's database in WAL mode
        # with synchronous=NORMAL. In the default rollback journal every publish and every fetch waited
        # for an fsync; a message lost to a power cut is re-sent by the sweeper.
        if broker_url.startswith("sqla+sqlite:///"):
            path = broker_url.removeprefix("sqla+sqlite:///")
            transport_options = {"creator": _sqlite_broker_connection(path)}
    app.conf.update(
        task_acks_late=True,
        # Without this a worker killed by SIGKILL/OOM acks its message and the work is lost.
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_routes=TASK_ROUTES,
        task_default_queue=CPU_QUEUE,
        # Each queue its own direct exchange and key: a bare Queue(name) would bind to the default
        # exchange and key, and every queue would receive every message.
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ALL_QUEUES],
        task_soft_time_limit=settings.worker.task_soft_time_limit_s,
        task_time_limit=settings.worker.task_time_limit_s,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        # A task running when the broker connection drops keeps running: its pages are claimed in the
        # database and its writes fenced on the claim, so finishing them is safe (and a redelivered copy
        # finds them taken). Cancelling would throw the work away (a page read to its end 50 ms before a
        # Redis restart was read again).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


def _sqlite_broker_connection(path: str) -> Any:
    """A connection factory for the embedded broker's SQLite file (see make_celery)."""
    import sqlite3

    def connect() -> sqlite3.Connection:
        # Several threads of a worker share the engine's pool, as with SQLAlchemy's own default.
        connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


@functools.cache
def get_celery() -> Celery:
    """The process-wide Celery app."""
    return make_celery(get_settings())


def broker_priority(priority: int) -> int:
    """Kombu's Redis transport serves priority 0 first; Pagemill's priorities (tiers) serve 9 first."""
    return 9 - max(0, min(9, priority))


def send_task(
    name: str,
    args: list[Any],
    queue_name: str | None = None,
    priority: int = 0,
    countdown: float | None = None,
) -> None:
    """Publish a task by name now, to ``queue_name`` or the task's route in TASK_ROUTES.

    ``priority`` (0-9, 9 first) orders messages within a queue on Redis; the embedded SQLite broker has no
    priorities and keeps arrival order. ``countdown``: the worker runs it no sooner than that many seconds
    from now (keep it well below broker.visibility_timeout_s: the worker holds the message meanwhile).
    """
    queue_name = queue_name or TASK_ROUTES.get(name, {"queue": CPU_QUEUE})["queue"]
    get_celery().send_task(
        name,
        args=args,
        queue=queue_name,
        exchange=queue_name,
        routing_key=queue_name,
        priority=broker_priority(priority),
        countdown=countdown,
    )


def waiting_messages(queue_name: str) -> int | None:
    """Messages waiting on ``queue_name`` in the broker (not those taken by a worker); 0 for a queue the
    broker does not know (a Redis restarted empty forgets its queues too); None if the broker cannot be
    asked now."""
    from amqp.exceptions import ChannelError

    try:
        with get_celery().connection_for_write() as connection:
            channel = connection.default_channel
            return int(channel.queue_declare(queue=queue_name, passive=True).message_count)
    except ChannelError:
        return 0
    except Exception:  # the broker is down: ask again at the next sweep
        log.warning("could not count the messages on %s", queue_name, exc_info=True)
        return None


def enqueue_after_commit(
    session: Session,
    name: str,
    args: list[Any],
    queue_name: str | None = None,
    *,
    priority: int = 0,
    countdown: float | None = None,
) -> None:
    """Publish a task (to ``queue_name``, else its route) once ``session`` commits; dropped on rollback.

    A publish that fails after commit is logged, not raised: the job row is already stored and the stalled
    job sweeper re-enqueues it, so nothing accepted is lost.
    """
    if not session.info.get("pagemill_listening"):
        # Listeners stay for the session's life: removing one from inside its own callback would mutate
        # SQLAlchemy's listener list while it is being iterated.
        event.listen(session, "after_commit", _publish_pending)
        event.listen(session, "after_rollback", _drop_pending)
        session.info["pagemill_listening"] = True
    session.info.setdefault("pagemill_pending_tasks", []).append(
        (name, args, queue_name, priority, countdown)
    )


def pending_after_commit(session: Session, name: str) -> bool:
    """Whether a task named ``name`` waits for ``session`` to commit already."""
    return any(task[0] == name for task in session.info.get("pagemill_pending_tasks", []))


def enqueue_page_tasks(session: Session, queue_name: str, count: int, *, priority: int = 0) -> None:
    """Publish ``count`` page tasks for ``queue_name`` once ``session`` commits: each is one unit of work
    there, whose pages the worker claims in the database (pagemill.jobs.claims)."""
    for _ in range(count):
        enqueue_after_commit(session, READ_PAGES, [queue_name], queue_name, priority=priority)


def _publish_pending(session: Session) -> None:
    pending: list[tuple[str, list[Any], str | None, int, float | None]] = session.info.pop(
        "pagemill_pending_tasks", []
    )
    for name, args, queue_name, priority, countdown in pending:
        try:
            send_task(name, args, queue_name, priority, countdown)
        except Exception:
            log.exception("publish of %s%s failed; the sweeper will re-enqueue it", name, args)


def _drop_pending(session: Session) -> None:
    session.info.pop("pagemill_pending_tasks", None)
