"""The stacks the benchmarks measure: a Pagemill API and its workers on a migrated database, with a client.

Two shapes. :func:`running_stack`: one worker of every queue, for the CPU path; :func:`gpu_stack`: a CPU
worker, with GPU workers that come and go per round (:meth:`GpuStack.gpu`), for the GPU path. Both start the
same way (:func:`_migrated_env_and_key`, :func:`_api_and_client`). The state lives in a temporary
``PAGEMILL_DATA_DIR`` (:func:`temp_data_dir`), and in Postgres, Redis and moto S3 when distributed
(:func:`distributed_env_stack`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.pool
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import FINAL_STATES
from bench.jobs import STATUS_POLL_S, JobRun, post_document, wait_until_succeeded
from tests.support.services import ManagedProcess, pagemill_api, pagemill_process, pagemill_worker

BENCH_TENANT = "bench"
"""The tenant benchmarks submit as, on the enterprise tier (no document quota, the highest rate limit)."""


def migrate(env: Mapping[str, str]) -> None:
    """Run `pagemill migrate` with ``env``; RuntimeError with its log if it fails."""
    proc = pagemill_process(["migrate"], env, name="migrate")
    code = proc.wait(timeout=120)
    if code != 0:
        raise RuntimeError(f"pagemill migrate failed:\n{proc.log_tail()}")
    proc.stop()


def create_key(env: Mapping[str, str], tenant: str = BENCH_TENANT, tier: str = "enterprise") -> str:
    """Make an API key with `pagemill keys create` on the (migrated) database of ``env``; its secret."""
    args = ["keys", "create", "--tenant", tenant, "--tier", tier, "--name", "bench", "--json"]
    proc = pagemill_process(args, env, name="keys-create")
    code = proc.wait(timeout=120)
    if code != 0:
        raise RuntimeError(f"pagemill keys create failed:\n{proc.log_tail()}")
    text = proc.log_text()
    proc.stop()
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"pagemill keys create printed no key:\n{text[-4000:]}")
    return str(json.loads(lines[-1])["secret"])


def auth_headers(key: str) -> dict[str, str]:
    """The headers that send ``key``."""
    return {"Authorization": f"Bearer {key}"}


@contextlib.contextmanager
def temp_data_dir(prefix: str = "pagemill-bench-") -> Iterator[Path]:
    """A temporary PAGEMILL_DATA_DIR, removed at the end."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def distributed_env_stack() -> tuple[contextlib.ExitStack, dict[str, str]]:
    """Enter Postgres + Redis + moto S3 contexts; return the exit stack and the Pagemill environment."""
    from tests.support.services import distributed_env, postgres_url, redis_server, s3_server

    stack = contextlib.ExitStack()
    try:
        pg = stack.enter_context(postgres_url())
        redis = stack.enter_context(redis_server())
        s3 = stack.enter_context(s3_server())
    except BaseException:
        stack.close()
        raise
    return stack, distributed_env(pg, redis.url, s3, bucket="pagemill-bench")


def _migrated_env_and_key(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """``env`` over the benchmarks' defaults, its database migrated, and a key of tenant ``bench``."""
    # The result cache would answer a resubmitted document without page work: benchmarks time the work.
    full_env = {"PAGEMILL_LOG_LEVEL": "INFO", "PAGEMILL_CACHE__ENABLED": "false", **env}
    migrate(full_env)
    return full_env, create_key(full_env)


@contextlib.contextmanager
def _api_and_client(env: Mapping[str, str], key: str) -> Iterator[tuple[ManagedProcess, str, httpx.Client]]:
    """``pagemill api`` and a client bound to it sending ``key``; yields both and the base URL."""
    with (
        pagemill_api(env, timeout=60) as (api, base_url),
        httpx.Client(base_url=base_url, timeout=120, headers=auth_headers(key)) as client,
    ):
        yield api, base_url, client


# --------------------------------------------------------------------------------------------------
# One worker of every queue


@dataclass
class BenchStack:
    """A Pagemill API and worker under test, with a client bound to the API."""

    base_url: str
    env: dict[str, str]
    worker: ManagedProcess
    api: ManagedProcess
    client: httpx.Client

    def submit(self, path: Path, **fields: str) -> str:
        """POST a document; return its job id (raises unless the answer is 202)."""
        return post_document(self.client, path, fields)

    def wait(self, job_id: str, timeout: float, poll: float = STATUS_POLL_S) -> dict[str, Any]:
        """Poll a job until it is final, whatever its state; return it."""
        # Not wait_until_succeeded: callers here look at failed and cancelled jobs too (recovery, webhooks).
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.get(f"/api/v1/jobs/{job_id}")
            response.raise_for_status()
            job: dict[str, Any] = response.json()
            if job["state"] in FINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} still {job['state']} after {timeout}s: {job}\n"
                    f"worker log:\n{self.worker.log_tail(30)}"
                )
            time.sleep(poll)

    def result(self, job_id: str, fmt: str = "markdown") -> bytes:
        """GET a job's result body."""
        response = self.client.get(f"/api/v1/jobs/{job_id}/result", params={"format": fmt})
        response.raise_for_status()
        return response.content

    def run_job(self, path: Path, timeout: float, fmt: str = "markdown", **fields: str) -> JobRun:
        """Submit, wait until final, fetch the result; time the whole round trip."""
        started = time.perf_counter()
        job_id = self.submit(path, **fields)
        submitted = time.perf_counter()
        job = self.wait(job_id, timeout)
        if job["state"] != "succeeded":
            raise RuntimeError(f"job {job_id} ended {job['state']}: {job}\n{self.worker.log_tail(30)}")
        body = self.result(job_id, fmt)
        ended = time.perf_counter()
        return JobRun(
            job_id=job_id,
            job=job,
            seconds=ended - started,
            submit_seconds=submitted - started,
            result_bytes=len(body),
        )


@contextlib.contextmanager
def running_stack(
    env: Mapping[str, str], *, concurrency: int = 2, webhooks: bool = False
) -> Iterator[BenchStack]:
    """Migrate, make a key of tenant ``bench`` (enterprise), start a worker (queues ingest,cpu,gpu), with
    ``webhooks`` a worker of the webhooks queue (as `pagemill up` does), and the API; yield them with a
    client sending the key; stop them."""
    full_env, key = _migrated_env_and_key(env)
    with contextlib.ExitStack() as extra:
        if webhooks:
            extra.enter_context(pagemill_worker(full_env, queues="webhooks", concurrency=None, timeout=90))
        with (
            pagemill_worker(full_env, queues="ingest,cpu,gpu", concurrency=concurrency, timeout=90) as worker,
            _api_and_client(full_env, key) as (api, base_url, client),
        ):
            yield BenchStack(base_url=base_url, env=dict(full_env), worker=worker, api=api, client=client)


@contextlib.contextmanager
def embedded_stack_and_pool(
    concurrency: int, processes: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> Iterator[tuple[BenchStack, multiprocessing.pool.Pool]]:
    """An embedded stack (its own data dir, worker ``concurrency``) and beside it the direct side: a forked
    pool of ``processes`` made by ``initializer(*initargs)``; yields both."""
    ctx = multiprocessing.get_context("fork")
    with (
        temp_data_dir() as data_dir,
        running_stack({"PAGEMILL_DATA_DIR": str(data_dir)}, concurrency=concurrency) as stack,
        ctx.Pool(processes, initializer=initializer, initargs=initargs) as pool,
    ):
        yield stack, pool


def pool_pids(pool: multiprocessing.pool.Pool) -> list[int]:
    """The direct side's processes, for its CPU: this one (it hands out the tasks) and the pool's."""
    return [os.getpid(), *(proc.pid for proc in pool._pool)]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# GPU workers per round


@dataclass
class GpuStack:
    """API and CPU worker, with a client bound to the API; GPU workers come and go per round."""

    client: httpx.Client
    cpu_worker: ManagedProcess
    api: ManagedProcess
    env: dict[str, str]
    gpu_worker: ManagedProcess | None = None

    def submit(self, path: Path) -> str:
        """POST the document for OCR by vllm; return the job id."""
        fields = {"ocr_mode": "ocr", "engine": "vllm", "formats": "markdown,json"}
        return post_document(self.client, path, fields, content_type="application/pdf")

    def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """Poll until the job is final; return it (raises unless it succeeded)."""
        return wait_until_succeeded(self.client, job_id, timeout, self.logs)

    def pages(self, job_id: str) -> list[dict[str, Any]]:
        """The per-page records of the job's JSON result."""
        response = self.client.get(f"/api/v1/jobs/{job_id}/result", params={"format": "json"})
        response.raise_for_status()
        pages: list[dict[str, Any]] = response.json()["pages"]
        return pages

    def logs(self) -> str:
        """The ends of both workers' logs."""
        gpu = self.gpu_worker.log_tail(30) if self.gpu_worker else "(none)"
        return f"gpu worker:\n{gpu}\ncpu worker:\n{self.cpu_worker.log_tail(15)}"

    @contextlib.contextmanager
    def gpu(
        self, in_flight: str, extra_env: Mapping[str, str] | None = None
    ) -> Iterator[tuple[ManagedProcess, int, str]]:
        """A GPU worker for the configuration ``in_flight`` (a number or ``auto``) and ``extra_env``; yields
        it with the pages in flight it chose and why (from its start-up line)."""
        env = {**self.env, **(extra_env or {})}
        if in_flight != "auto":
            env["PAGEMILL_ENGINES__VLLM__REQUESTS_IN_FLIGHT"] = in_flight
        with pagemill_worker(env, queues="gpu", concurrency=None, timeout=90) as worker:
            found = _CHOSEN.search(worker.log_text())
            if found is None:
                raise RuntimeError(f"the GPU worker did not say what it chose:\n{worker.log_tail(30)}")
            self.gpu_worker = worker
            try:
                yield worker, int(found.group(1)), found.group(2)
            finally:
                self.gpu_worker = None


_CHOSEN = re.compile(r"GPU worker: (\d+) pages in flight \((.*)\)")


@contextlib.contextmanager
def gpu_stack(env: Mapping[str, str]) -> Iterator[GpuStack]:
    """Migrate and make a key (tenant ``bench``, enterprise); run the API and a CPU worker (ingest,cpu; 1)."""
    full_env, key = _migrated_env_and_key(env)
    with (
        pagemill_worker(full_env, queues="ingest,cpu", concurrency=1, timeout=90) as cpu_worker,
        _api_and_client(full_env, key) as (api, _, client),
    ):
        yield GpuStack(client=client, cpu_worker=cpu_worker, api=api, env=full_env)


@contextlib.contextmanager
def distributed_gpu_stack(engine_env: Mapping[str, str]) -> Iterator[GpuStack]:
    """A :func:`gpu_stack` in distributed mode (Postgres, Redis, moto S3; its own data dir), with
    ``engine_env`` on top."""
    services, dist_env = distributed_env_stack()
    with services, temp_data_dir() as data_dir:
        env = {"PAGEMILL_DATA_DIR": str(data_dir), **dist_env, **engine_env}
        with gpu_stack(env) as stack:
            yield stack
