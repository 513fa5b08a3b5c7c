"""A distributed Pagemill for chaos runs: every service its own, every process restartable on the same port.

:func:`chaos_stack` starts a Postgres cluster (stoppable), a Redis server (restartable empty), two API
processes and several workers (queues ``ingest,cpu``) against an S3 server, all owned by the caller. The
pieces a chaos run needs around it:

* :class:`ApiSlot` / :class:`WorkerSlot`: one API port or worker name that can be killed with SIGKILL and
  started again, as a supervisor (Kubernetes, systemd) would;
* :class:`FailoverClient`: spreads requests over both APIs, fails over on connection errors, and records
  every answer (status, Retry-After) and every connection error with the API it was sent to;
* :class:`~tests.support.chaos_watch.ReadLog` and :class:`~tests.support.chaos_watch.JobMonitor`: what
  the run watches besides the API (page reads per process, every job's progress).

The run itself (submissions, the chaos actions, the checks) is :mod:`tests.support.chaos_run`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.chaos_watch import ReadLog
from tests.support.services import (
    REPO_ROOT,
    ManagedProcess,
    PostgresServer,
    RedisServer,
    S3Server,
    distributed_env,
    free_port,
    pagemill_process,
    postgres_server,
    redis_server,
    wait_for_log,
    wait_http_ok,
)
from tests.support.simulator import SimulatorHandle, vllm_simulator

READ_LOG_DIR = Path(__file__).resolve().parent / "read_log"

# Recovery must be visible within a test: a stalled job is re-enqueued after 15 s without progress (the
# fixed job lease of today's code), Redis gives back a dead worker's unacked messages after 60 s (its
# minimum). A chaos kill is not a poison page: attempts are not what this suite tests (the poison test is).
CHAOS_SETTINGS = {
    "PAGEMILL_LOG_LEVEL": "INFO",
    "PAGEMILL_LIMITS__MAX_PAGES": "40",
    "PAGEMILL_WORKER__LEASE_S": "15",
    "PAGEMILL_WORKER__SWEEP_INTERVAL_S": "1",
    "PAGEMILL_WORKER__MAX_REQUEUES": "1000",
    "PAGEMILL_WORKER__MAX_ATTEMPTS": "10",
    "PAGEMILL_BROKER__VISIBILITY_TIMEOUT_S": "60",
    "PAGEMILL_OCR__DETECT_ORIENTATION": "false",
    "PAGEMILL_DATABASE__CONNECT_TIMEOUT_S": "2",
    # Every chaos job repeats a document of the clean run: the result cache would answer it without the
    # page work this suite exists to disturb.
    "PAGEMILL_CACHE__ENABLED": "false",
}


@dataclass
class ApiSlot:
    """One ``pagemill api`` on a fixed port; :meth:`kill9` and :meth:`start` keep the port."""

    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: ManagedProcess | None = None
    generation: int = 0
    down_since: float | None = None
    down_windows: list[tuple[float, float]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        """Start the API and wait until liveness answers; close the current down window."""
        self.generation += 1
        log = self.log_dir / f"{self.name}-{self.generation}.log"
        self.logs.append(log)
        args = ["api", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = pagemill_process(args, self.env, name=f"{self.name}:{self.port}", log_path=log)
        wait_http_ok(f"{self.base_url}/api/v1/health/live", timeout, handle=self.proc)
        if self.down_since is not None:
            self.down_windows.append((self.down_since, time.time()))
            self.down_since = None

    def kill9(self) -> None:
        """SIGKILL the API's whole process group (a crashed container)."""
        self.down_since = time.time()
        if self.proc is not None:
            self.proc.kill9()
            self.proc.stop()

    def was_down(self, at: float, grace: float = 1.0) -> bool:
        """Whether the API was killed and not yet back at Unix time ``at`` (``grace`` s either side)."""
        windows = [*self.down_windows, *([(self.down_since, float("inf"))] if self.down_since else [])]
        return any(start - grace <= at <= end + grace for start, end in windows)

    def stop(self) -> None:
        """Stop gracefully (end of the run)."""
        if self.proc is not None:
            self.proc.stop()

    def unhandled_errors(self) -> list[str]:
        """Log lines of unhandled errors (the ones answered 500) in every generation's log."""
        return [
            line
            for path in self.logs
            if path.exists()
            for line in path.read_text(errors="replace").splitlines()
            if "unhandled error" in line
        ]


@dataclass
class WorkerSlot:
    """One worker (prefork pool of ``concurrency`` processes); restarted under a fresh node name."""

    name: str
    env: dict[str, str]
    log_dir: Path
    queues: str = "ingest,cpu"
    concurrency: int = 2
    proc: ManagedProcess | None = None
    generation: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self, timeout: float = 120.0) -> None:
        """Start the worker and wait for Celery's ``ready.`` line."""
        self.generation += 1
        log = self.log_dir / f"{self.name}-{self.generation}.log"
        self.logs.append(log)
        hostname = f"{self.name}-{self.generation}-{secrets.token_hex(2)}@%h"
        args = ["worker", "--queues", self.queues, "--hostname", hostname]
        args += ["--concurrency", str(self.concurrency)]
        self.proc = pagemill_process(args, self.env, name=f"{self.name}#{self.generation}", log_path=log)
        wait_for_log(self.proc, r"\bready\.", timeout)

    def pool_pids(self) -> list[int]:
        """The pool processes (direct children of the worker's main process)."""
        return self.proc.child_pids(recursive=False) if self.proc and self.proc.is_running() else []

    def all_pids(self) -> set[int]:
        """The main process and every descendant."""
        if self.proc is None or not self.proc.is_running():
            return set()
        return {self.proc.pid, *self.proc.child_pids()}

    def kill9(self) -> set[int]:
        """SIGKILL the main process and its pool at once (a lost node or container); the pids killed."""
        pids = self.all_pids()
        if self.proc is not None:
            self.proc.kill9()
            self.proc.stop()
        return pids

    def log_text(self) -> str:
        """Every generation's log, concatenated."""
        return "\n".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    def stop(self) -> None:
        """Stop gracefully (end of the run)."""
        if self.proc is not None:
            self.proc.stop(timeout=30)


@dataclass
class Answer:
    """One HTTP answer or connection error seen by the client (``at``: Unix time)."""

    at: float
    target: str
    method: str
    route: str
    status: int | None
    retry_after: str | None = None
    error: str | None = None


class FailoverClient:
    """An API client over several base URLs: round robin, and on a connection error the next URL.

    Every answer and every connection error is recorded (thread-safe) for the checks of the run.
    """

    def __init__(self, apis: list[ApiSlot], key: str, timeout: float = 30.0) -> None:
        self.apis = apis
        self._clients = {
            api.base_url: httpx.Client(
                base_url=api.base_url, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
            )
            for api in apis
        }
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []

    def request(self, method: str, path: str, *, route: str, **kwargs: Any) -> httpx.Response:
        """Send to the next API in turn; on a connection error try the others (each once), then again
        after a short pause, for at most 60 s. ``route`` names the request in the records."""
        deadline = time.monotonic() + 60
        while True:
            first = next(self._turn)
            for offset in range(len(self.apis)):
                api = self.apis[(first + offset) % len(self.apis)]
                try:
                    response = self._clients[api.base_url].request(method, path, **kwargs)
                except httpx.TransportError as exc:
                    self._record(Answer(time.time(), api.name, method, route, None, error=repr(exc)))
                    continue
                retry_after = response.headers.get("retry-after")
                self._record(Answer(time.time(), api.name, method, route, response.status_code, retry_after))
                return response
            if time.monotonic() > deadline:
                raise TimeoutError(f"no API answered {method} {path} for 60 s")
            time.sleep(0.2)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def statuses(self) -> Counter[tuple[str, int | None]]:
        """How many answers of each (route, status); None counts connection errors."""
        with self._lock:
            return Counter((answer.route, answer.status) for answer in self.answers)

    def close(self) -> None:
        """Close the connections."""
        for client in self._clients.values():
            client.close()


@dataclass
class ChaosStack:
    """Everything a chaos run owns."""

    pg: PostgresServer
    redis: RedisServer
    env: dict[str, str]
    key: str
    apis: list[ApiSlot]
    workers: list[WorkerSlot]
    read_log: ReadLog
    log_dir: Path
    gpu_worker: WorkerSlot | None = None
    sim: SimulatorHandle | None = None


def _run_ok(args: list[str], env: dict[str, str], log_dir: Path) -> str:
    proc = pagemill_process(args, env, name=args[0], log_path=log_dir / f"{args[0]}.log")
    code = proc.wait(timeout=180)
    text = proc.log_text()
    proc.stop()
    if code != 0:
        raise RuntimeError(f"pagemill {' '.join(args)} failed ({code}):\n{text[-3000:]}")
    return text


def _api_key(env: dict[str, str], log_dir: Path) -> str:
    import json

    args = ["keys", "create", "--tenant", "chaos", "--tier", "enterprise", "--json"]
    text = _run_ok(args, env, log_dir)
    return str(json.loads([line for line in text.splitlines() if line.startswith("{")][-1])["secret"])


@contextlib.contextmanager
def chaos_stack(
    s3: S3Server,
    log_dir: Path,
    *,
    workers: int = 2,
    concurrency: int = 2,
    bucket: str = "pagemill-chaos",
    extra_env: dict[str, str] | None = None,
    gpu: bool = False,
) -> Iterator[ChaosStack]:
    """Start Postgres, Redis, two APIs and ``workers`` workers (read log on); yield them; stop all.

    ``gpu``: also the vLLM simulator (hash answers: deterministic, cheap on CPU; ~1 s per page, 8 at once) and
    a GPU worker (queue ``gpu``, 4 threads) for jobs submitted with ``engine=vllm``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    read_log = log_dir / "reads.log"
    with contextlib.ExitStack() as services:
        pg = services.enter_context(postgres_server())
        redis = services.enter_context(redis_server())
        if not redis.restartable:
            raise RuntimeError("the chaos suite needs a redis-server binary of its own to restart")
        sim = (
            services.enter_context(vllm_simulator(max_num_seqs=8, prefill_ms=40, ms_per_token=15, tokens=64))
            if gpu
            else None
        )
        env = {
            **distributed_env(pg.url(), redis.url, s3, bucket=bucket),
            **CHAOS_SETTINGS,
            **({"PAGEMILL_ENGINES__VLLM__BASE_URL": sim.base_url} if sim else {}),
            **(extra_env or {}),
        }
        _run_ok(["migrate"], env, log_dir)
        key = _api_key(env, log_dir)
        worker_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(READ_LOG_DIR), str(REPO_ROOT)]),
            "PAGEMILL_TEST_READ_LOG": str(read_log),
        }
        api_slots = [ApiSlot(f"api{n}", env, log_dir) for n in (1, 2)]
        worker_slots = [
            WorkerSlot(f"worker{n}", worker_env, log_dir, concurrency=concurrency)
            for n in range(1, workers + 1)
        ]
        gpu_slot = WorkerSlot("gpu", worker_env, log_dir, queues="gpu", concurrency=4) if gpu else None
        slots: list[ApiSlot | WorkerSlot] = [*worker_slots, *([gpu_slot] if gpu_slot else []), *api_slots]
        try:
            for slot in slots:
                slot.start()
            yield ChaosStack(
                pg, redis, env, key, api_slots, worker_slots, ReadLog(read_log), log_dir, gpu_slot, sim
            )
        finally:
            for slot in reversed(slots):
                with contextlib.suppress(Exception):
                    slot.stop()
