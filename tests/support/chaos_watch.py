"""What a chaos run watches besides the API: the pages each pool process read, and every job's progress.

* :class:`ReadLog`: the page reads logged by ``tests/support/read_log/sitecustomize.py`` (one line per
  read started and ended, with the pid), so work done twice and reads cut short by a kill can be counted;
* :class:`JobMonitor`: a thread reading every job's state and pages done from Postgres twice a second,
  keeping a timeline of changes, so recovery times can be measured (``pages_done`` is what the API reports
  too, and the monitor keeps working while an API is down).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.services import PostgresServer


@dataclass(frozen=True)
class Read:
    """One page read by one pool process: ``ended`` is None when the read was cut short."""

    job_id: str
    index: int
    pid: int
    started: float
    ended: float | None
    outcome: str


class ReadLog:
    """The page reads recorded by the read-log instrumentation (Unix times)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def reads(self) -> list[Read]:
        """Every read so far, in start order."""
        if not self.path.exists():
            return []
        open_reads: dict[tuple[str, int, int], float] = {}
        done: list[Read] = []
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue  # a line being written right now
            event, job_id, index, pid, at = parts[0], parts[1], int(parts[2]), int(parts[3]), float(parts[4])
            key = (job_id, index, pid)
            if event == "start":
                open_reads[key] = at
            elif key in open_reads:
                done.append(Read(job_id, index, pid, open_reads.pop(key), at, event))
        done += [Read(j, i, p, at, None, "cut") for (j, i, p), at in open_reads.items()]
        return sorted(done, key=lambda read: read.started)

    def in_flight(self, pids: set[int] | None = None) -> list[Read]:
        """Reads started and not finished (by ``pids`` only, if given)."""
        return [
            read
            for read in self.reads()
            if read.ended is None and (pids is None or read.pid in pids) and _alive(read.pid)
        ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class JobPoint:
    """A job's state and pages done, as the monitor saw them at ``at`` (Unix time)."""

    at: float
    state: str
    done: int


class JobMonitor:
    """Polls every job's state and pages done from Postgres; keeps a timeline of changes per job."""

    def __init__(self, pg: PostgresServer, interval: float = 0.5) -> None:
        self.conninfo = f"host=127.0.0.1 port={pg.port} user={pg.superuser} dbname=postgres"
        self.interval = interval
        self.timelines: dict[str, list[JobPoint]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)

    def __enter__(self) -> JobMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def latest(self, job_id: str) -> JobPoint | None:
        """The last point seen for a job."""
        with self._lock:
            points = self.timelines.get(job_id)
            return points[-1] if points else None

    def points(self, job_id: str) -> list[JobPoint]:
        """The job's timeline (a copy)."""
        with self._lock:
            return list(self.timelines.get(job_id, []))

    def _run(self) -> None:
        import psycopg

        conn: Any = None
        while not self._stop.wait(self.interval):
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
                rows = conn.execute("SELECT id, state, pages_done FROM jobs").fetchall()
            except psycopg.Error:
                # Postgres is down (a chaos action): look again next tick with a new connection.
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                conn = None
                continue
            now = time.time()
            with self._lock:
                for job_id, state, done in rows:
                    points = self.timelines.setdefault(str(job_id), [])
                    if not points or (points[-1].state, points[-1].done) != (state, done):
                        points.append(JobPoint(now, str(state), int(done)))
        if conn is not None:
            conn.close()
