"""Which workers are alive and which queues they consume: each worker's main process says so every
``worker.heartbeat_interval_s``, and a beat counts for three intervals.

Where the beats live:

* with a Redis broker (distributed mode), one hash in the broker's Redis, ``pagemill:workers``: a field per
  worker (its Celery node name), the beat as JSON. Every host and API replica sees the same hash, and a
  read is one ``HGETALL`` whatever else the Redis holds (rate-limit counters share it);
* otherwise (embedded mode: one host, one data dir) a file per worker in ``<data_dir>/workers/``.

Not in the database: no migration, and no write every few seconds per worker on the SQLite file that also
carries the jobs. Celery's own ``inspect`` broadcast was not used: it waits for every node's answer (slow,
and unreliable across replicas). A worker that stops warmly removes its beat; a killed one's lapses, and
readers delete beats lapsed for long.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from pagemill.queue import ALL_QUEUES
from pagemill.settings import Settings

log = logging.getLogger(__name__)

BEATS_PER_LIFE = 3
"""A beat counts this many intervals (one or two lost beats do not make a worker gone)."""
FORGET_AFTER_S = 3600.0
"""Readers delete beats lapsed this long (a killed worker's); a newer one would still count as gone."""
REDIS_KEY = "pagemill:workers"


@dataclass(frozen=True)
class WorkerBeat:
    """One worker's latest word: who (node, host, pid), what it consumes, and until when it counts."""

    node: str
    queues: tuple[str, ...]
    host: str
    pid: int
    pool: str
    concurrency: int | None
    started_at: float
    beat_at: float
    expires_at: float

    def to_json(self) -> str:
        """The beat as stored."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerBeat | None:
        """A stored beat; None for one this version cannot read (a torn file, another release's shape)."""
        try:
            data = json.loads(raw)
            return cls(**{**data, "queues": tuple(data["queues"])})
        except (ValueError, TypeError, KeyError):
            return None

    def alive(self, now: float) -> bool:
        """Whether the beat still counts at ``now`` (epoch seconds)."""
        return now < self.expires_at


class HeartbeatStore(Protocol):
    """Where beats are kept (see the module docstring)."""

    def put(self, beat: WorkerBeat) -> None:
        """Store ``beat``, replacing its worker's previous one."""

    def remove(self, node: str) -> None:
        """Forget worker ``node`` (it stopped)."""

    def beats(self, now: float) -> list[WorkerBeat]:
        """Every beat that still counts at ``now``."""


class RedisHeartbeats:
    """Beats in one hash of the broker's Redis."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)

    def put(self, beat: WorkerBeat) -> None:
        """Store ``beat`` in its worker's field."""
        self._redis.hset(REDIS_KEY, beat.node, beat.to_json())

    def remove(self, node: str) -> None:
        """Delete worker ``node``'s field."""
        self._redis.hdel(REDIS_KEY, node)

    def beats(self, now: float) -> list[WorkerBeat]:
        """The beats that count; fields lapsed for long (killed workers) are deleted."""
        stored: dict[bytes, bytes] = self._redis.hgetall(REDIS_KEY)  # type: ignore[assignment]
        beats, stale = _sort_out(((node.decode(), raw) for node, raw in stored.items()), now)
        if stale:
            self._redis.hdel(REDIS_KEY, *stale)
        return beats


class FileHeartbeats:
    """Beats as one JSON file per worker in a folder (one host)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, node: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9@._-]", "_", node) + ".json")

    def put(self, beat: WorkerBeat) -> None:
        """Write ``beat`` to its worker's file (whole: written aside, then renamed over the old one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self._path(beat.node)
        temporary = target.with_name(f".{target.name}.{os.getpid()}")
        temporary.write_text(beat.to_json(), encoding="utf-8")
        os.replace(temporary, target)

    def remove(self, node: str) -> None:
        """Delete worker ``node``'s file."""
        self._path(node).unlink(missing_ok=True)

    def beats(self, now: float) -> list[WorkerBeat]:
        """The beats that count; files lapsed for long (killed workers) are deleted."""
        stored: list[tuple[str, str]] = []
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError):  # removed meanwhile
                stored.append((path.name, path.read_text(encoding="utf-8")))
        beats, stale = _sort_out(stored, now)
        for name in stale:
            (self.folder / name).unlink(missing_ok=True)
        return beats


def _sort_out(stored: Iterable[tuple[str, str | bytes]], now: float) -> tuple[list[WorkerBeat], list[str]]:
    """The beats that count at ``now``, and the keys of those lapsed for long (or unreadable)."""
    beats: list[WorkerBeat] = []
    stale: list[str] = []
    for key, raw in stored:
        beat = WorkerBeat.from_json(raw)
        if beat is None or now - beat.expires_at > FORGET_AFTER_S:
            stale.append(key)
        elif beat.alive(now):
            beats.append(beat)
    return sorted(beats, key=lambda beat: beat.node), stale


def heartbeat_store(settings: Settings) -> HeartbeatStore:
    """The store for these settings: the broker's Redis if it is one, else the data dir's folder."""
    url = settings.broker_url
    if url.startswith(("redis://", "rediss://")):
        return _redis_store(url)
    return FileHeartbeats(settings.data_dir.resolve() / "workers")


@functools.cache
def _redis_store(url: str) -> RedisHeartbeats:
    # One client (and connection pool) per process and URL: the API reads at every uncached scrape.
    return RedisHeartbeats(url)


def workers_per_queue(beats: Iterable[WorkerBeat]) -> dict[str, int]:
    """Live workers consuming each queue (every queue named, 0 when none does)."""
    counts = dict.fromkeys(ALL_QUEUES, 0)
    for beat in beats:
        for queue in beat.queues:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


class Heartbeat:
    """A worker's beating thread: :meth:`start` when the worker is ready, :meth:`stop` when it shuts down."""

    def __init__(
        self,
        store: HeartbeatStore,
        *,
        node: str,
        queues: Iterable[str],
        pool: str,
        concurrency: int | None,
        interval_s: float,
    ) -> None:
        self.store = store
        self.node = node
        self.queues = tuple(sorted(queues))
        self.pool = pool
        self.concurrency = concurrency
        self.interval_s = interval_s
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> WorkerBeat:
        """Store one beat now; the beat."""
        now = time.time()
        beat = WorkerBeat(
            node=self.node,
            queues=self.queues,
            host=socket.gethostname(),
            pid=os.getpid(),
            pool=self.pool,
            concurrency=self.concurrency,
            started_at=self.started_at,
            beat_at=now,
            expires_at=now + BEATS_PER_LIFE * self.interval_s,
        )
        self.store.put(beat)
        return beat

    def start(self) -> None:
        """Beat now (the worker counts from its start), then every interval from a daemon thread."""
        self._beat_or_warn()
        self._thread = threading.Thread(target=self._run, name="pagemill-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat_or_warn()

    def _beat_or_warn(self) -> None:
        try:
            self.beat()
        except Exception:  # the store is away (Redis restarting): the next beat tries again
            log.warning("worker heartbeat not stored", exc_info=True)

    def stop(self) -> None:
        """Stop beating and remove the beat: the worker no longer counts from now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.remove(self.node)
        except Exception:  # it lapses by itself
            log.warning("worker heartbeat not removed", exc_info=True)
