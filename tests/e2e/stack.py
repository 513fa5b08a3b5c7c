"""A running Pagemill (API + worker processes) and a small typed client for the e2e tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import ManagedProcess, pagemill_api, pagemill_process, pagemill_worker

FINAL_STATES = {"succeeded", "failed", "cancelled"}

# Small limits so the limit paths are cheap to reach; a fast sweeper so lost work is found quickly.
TEST_LIMITS = {
    "PAGEMILL_LIMITS__MAX_PAGES": "40",
    "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
    "PAGEMILL_WORKER__SWEEP_INTERVAL_S": "1",
    "PAGEMILL_LOG_LEVEL": "INFO",
}


@dataclass
class Stack:
    """A Pagemill API and worker, with a client bound to the API."""

    base_url: str
    env: dict[str, str]
    worker: ManagedProcess
    api: ManagedProcess
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=30)

    def submit(self, path: Path, **fields: str) -> httpx.Response:
        """POST a document with form fields."""
        with path.open("rb") as f:
            return self.client.post("/api/v1/documents", files={"file": (path.name, f)}, data=fields)

    def submit_ok(self, path: Path, **fields: str) -> str:
        """POST a document, assert 202, return the job id."""
        response = self.submit(path, **fields)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """GET a job."""
        response = self.client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(self, job_id: str, timeout: float = 90, until: set[str] | None = None) -> dict[str, Any]:
        """Poll a job until it reaches one of ``until`` (default: a final state)."""
        until = until or FINAL_STATES
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in until:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} still {job['state']} after {timeout}s: {job}\n"
                    f"worker log:\n{self.worker.log_tail(60)}"
                )
            time.sleep(0.1)

    def result(self, job_id: str, fmt: str = "markdown") -> httpx.Response:
        """GET a job's result."""
        return self.client.get(f"/api/v1/jobs/{job_id}/result", params={"format": fmt})


def migrate(env: Mapping[str, str]) -> None:
    """Run `pagemill migrate` with ``env`` and assert it succeeded."""
    proc = pagemill_process(["migrate"], env, name="migrate")
    code = proc.wait(timeout=120)
    assert code == 0, proc.log_text()


@contextlib.contextmanager
def running_stack(env: Mapping[str, str], *, concurrency: int = 2) -> Iterator[Stack]:
    """Migrate, start a worker and the API, yield the stack, stop both."""
    full_env = {**TEST_LIMITS, **env}
    migrate(full_env)
    with (
        pagemill_worker(full_env, queues="ingest,cpu,gpu", concurrency=concurrency) as worker,
        pagemill_api(full_env) as (api, base_url),
    ):
        stack = Stack(base_url=base_url, env=full_env, worker=worker, api=api)
        try:
            yield stack
        finally:
            stack.client.close()
