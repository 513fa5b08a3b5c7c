"""Reading the state of a running Pagemill: queue backlogs (database), live workers (heartbeats),
dependencies and engines (checks); as a snapshot for the metrics and as the detailed health report."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pagemill import __version__
from pagemill.db import get_engine, session_scope
from pagemill.models.base import utcnow
from pagemill.observability import checks, heartbeats
from pagemill.observability import repository as repo
from pagemill.observability.repository import Backlog
from pagemill.observability.schemas import (
    ComponentHealth,
    HealthReport,
    MigrationsHealth,
    QueueHealth,
    WorkerHealth,
)
from pagemill.queue import ALL_QUEUES, CPU_QUEUE, GPU_QUEUE, INGEST_QUEUE, WEBHOOKS_QUEUE
from pagemill.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueState:
    """One queue as the metrics show it: work waiting and its age (None: unread, the database is down),
    live workers (None: the heartbeats could not be read)."""

    depth: int | None
    oldest_age_s: float | None
    workers: int | None


@dataclass(frozen=True)
class OperationsSnapshot:
    """What the API's scrape-time gauges show."""

    queues: dict[str, QueueState]
    dependencies: dict[str, bool]


def read_backlogs(now: datetime) -> dict[str, Backlog]:
    """What waits on each queue now (one short read transaction)."""
    with session_scope() as session:
        return {
            INGEST_QUEUE: repo.ingest_backlog(session),
            CPU_QUEUE: repo.page_backlog(session, CPU_QUEUE),
            GPU_QUEUE: repo.page_backlog(session, GPU_QUEUE),
            WEBHOOKS_QUEUE: repo.webhook_backlog(session, now),
        }


def age_s(backlog: Backlog, now: datetime) -> float:
    """Seconds the longest-waiting item of ``backlog`` has waited at ``now``; 0 when nothing waits."""
    if backlog.depth == 0 or backlog.waiting_since is None:
        return 0.0
    return max(0.0, (now - backlog.waiting_since.astimezone(UTC)).total_seconds())


def _queue_states(
    backlogs: dict[str, Backlog] | None, workers: dict[str, int] | None, now: datetime
) -> dict[str, QueueState]:
    return {
        name: QueueState(
            depth=None if backlogs is None else backlogs[name].depth,
            oldest_age_s=None if backlogs is None else round(age_s(backlogs[name], now), 3),
            workers=None if workers is None else workers.get(name, 0),
        )
        for name in ALL_QUEUES
    }


def _backlogs_or_none(now: datetime) -> dict[str, Backlog] | None:
    try:
        return read_backlogs(now)
    except Exception:  # reported as missing figures, never as an error of the caller
        log.warning("queue backlogs could not be read", exc_info=True)
        return None


def _beats_or_none(settings: Settings) -> list[heartbeats.WorkerBeat] | None:
    try:
        return heartbeats.heartbeat_store(settings).beats(time.time())
    except Exception:  # the Redis of the heartbeats is away
        log.warning("worker heartbeats could not be read", exc_info=True)
        return None


def operations_snapshot(settings: Settings) -> OperationsSnapshot:
    """Dependencies (checked side by side), then what waits on each queue and who consumes it."""
    dependencies = checks.run_checks(checks.DEPENDENCIES)
    now = utcnow()
    backlogs = _backlogs_or_none(now) if dependencies["database"].ok else None
    beats = _beats_or_none(settings)
    workers = None if beats is None else heartbeats.workers_per_queue(beats)
    return OperationsSnapshot(
        queues=_queue_states(backlogs, workers, now),
        dependencies={name: result.ok for name, result in dependencies.items()},
    )


def _component(result: checks.CheckResult) -> ComponentHealth:
    return ComponentHealth(
        status="ok" if result.ok else "down", latency_ms=result.latency_ms, error=result.error
    )


def _migrations() -> MigrationsHealth | None:
    from pagemill.migrate import schema_state

    try:
        state = schema_state(get_engine())
    except Exception:
        log.warning("the schema revision could not be read", exc_info=True)
        return None
    return MigrationsHealth(
        current=state.current, heads=list(state.heads), up_to_date=state.known and not state.behind
    )


def _broker_messages() -> dict[str, int | None]:
    from pagemill.queue import waiting_messages

    return {name: waiting_messages(name) for name in ALL_QUEUES}


def health_report(settings: Settings) -> HealthReport:
    """Check everything now: components and engines side by side, then the schema, the queues (database
    and broker) and the workers' heartbeats."""
    engine_checks = checks.engine_checks(settings)
    results = checks.run_checks(
        {**checks.DEPENDENCIES, **{f"engine:{name}": check for name, check in engine_checks.items()}}
    )
    components = {name: _component(results[name]) for name in checks.DEPENDENCIES}
    engines = {name: _component(results[f"engine:{name}"]) for name in engine_checks}
    now = utcnow()
    database_ok = results["database"].ok
    migrations = _migrations() if database_ok else None
    backlogs = _backlogs_or_none(now) if database_ok else None
    messages = _broker_messages() if results["broker"].ok else dict.fromkeys(ALL_QUEUES)
    beats = _beats_or_none(settings)
    states = _queue_states(backlogs, None if beats is None else heartbeats.workers_per_queue(beats), now)
    queues = {
        name: QueueHealth(
            depth=state.depth,
            oldest_age_s=state.oldest_age_s,
            workers=state.workers,
            broker_messages=messages[name],
        )
        for name, state in states.items()
    }
    workers = [
        WorkerHealth(
            node=beat.node,
            queues=list(beat.queues),
            host=beat.host,
            pid=beat.pid,
            pool=beat.pool,
            concurrency=beat.concurrency,
            started_at=datetime.fromtimestamp(beat.started_at, UTC),
            last_beat_s=round(max(0.0, now.timestamp() - beat.beat_at), 3),
        )
        for beat in beats or []
    ]
    return HealthReport(
        status=overall_status(components, engines, queues, migrations),
        version=__version__,
        mode="embedded" if settings.is_embedded else "distributed",
        checked_at=now,
        components=components,
        engines=engines,
        queues=queues,
        workers=workers,
        migrations=migrations,
    )


def overall_status(
    components: dict[str, ComponentHealth],
    engines: dict[str, ComponentHealth],
    queues: dict[str, QueueHealth],
    migrations: MigrationsHealth | None,
) -> Literal["ok", "degraded", "down"]:
    """down, degraded or ok, as :class:`HealthReport` documents."""
    if any(c.status != "ok" for c in components.values()) or migrations is None or not migrations.up_to_date:
        return "down"
    unserved = any((q.depth or 0) > 0 and q.workers == 0 for q in queues.values())
    if unserved or any(e.status != "ok" for e in engines.values()):
        return "degraded"
    return "ok"
