"""A running Pagemill (API + worker processes) and a small typed client for the e2e tests."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.services import ManagedProcess, pagemill_api, pagemill_process, pagemill_worker

# For a test whose subject is the same in both modes (the API's own checks, the worker's probe, HTTP edges):
# it runs on the embedded stack only. The distributed twin would exercise nothing more (its storage and
# broker are covered by the flows that run in both) and cost the suite its time.
EMBEDDED_ONLY = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

FINAL_STATES = {"succeeded", "failed", "cancelled", "expired"}

# Small limits so the limit paths are cheap to reach; a fast sweeper so lost work is found quickly.
TEST_LIMITS = {
    "PAGEMILL_LIMITS__MAX_PAGES": "40",
    "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
    "PAGEMILL_WORKER__SWEEP_INTERVAL_S": "1",
    # Tests shrink worker.lease_s to seconds to see recovery quickly; on a loaded machine a page can then
    # wait longer than a few leases, which must not end its job JOB_STALLED (tests of that set their own).
    "PAGEMILL_WORKER__MAX_REQUEUES": "1000",
    "PAGEMILL_LOG_LEVEL": "INFO",
    # Tests submit the same documents again and again and expect them read (a crash, a cancel mid-page):
    # the result cache would answer those without page work. Its own tests turn it on.
    "PAGEMILL_CACHE__ENABLED": "false",
}


E2E_TENANT = "e2e"


@dataclass
class Stack:
    """A Pagemill API and worker (and, when asked for, a worker of the event relay and webhook deliveries,
    as `pagemill up` runs one), with a client bound to the API that sends ``key`` (tenant ``e2e``,
    enterprise tier, admin scope)."""

    base_url: str
    env: dict[str, str]
    worker: ManagedProcess
    api: ManagedProcess
    key: str
    webhook_worker: ManagedProcess | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.client_for(self.key)

    def client_for(self, key: str | None, base_url: str | None = None) -> httpx.Client:
        """A client sending ``key`` as a Bearer token (none when None); close it after use."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=base_url or self.base_url, timeout=30, headers=headers)

    def create_key(self, tenant: str, tier: str = "enterprise", *, admin: bool = False) -> dict[str, Any]:
        """Create a key through the admin API with the stack's admin key; its JSON (``secret``, ``id``, ...).

        (`pagemill keys create`, the module's :func:`create_key`, starts a process of its own: seconds of
        CPU per key on the suite's 2 cores. The CLI has its own tests.)"""
        body = {"tenant": tenant, "tier": tier, "scopes": ["admin"] if admin else []}
        response = self.client.post("/api/v1/admin/keys", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

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


def create_key(
    env: Mapping[str, str],
    tenant: str,
    tier: str = "enterprise",
    *,
    admin: bool = False,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run `pagemill keys create --json` against the stack's database; the key's JSON with its secret."""
    args = ["keys", "create", "--tenant", tenant, "--tier", tier, "--json", *extra_args]
    return _printed_key(pagemill_process([*args, "--admin"] if admin else args, env, name="keys-create"))


def _printed_key(proc: ManagedProcess) -> dict[str, Any]:
    """The JSON of the key a `keys create --json` process printed (after it succeeded)."""
    code = proc.wait(timeout=120)
    assert code == 0, proc.log_text()
    line = [text for text in proc.log_text().splitlines() if text.startswith('{"id"')][-1]
    created: dict[str, Any] = json.loads(line)
    return created


def migrate_and_create_key(env: Mapping[str, str]) -> str:
    """Migrate and create the stack's admin key (tenant ``e2e``, enterprise) in one process
    (tests.support.migrate_and_key: the CLI's own commands); the key's secret."""
    args = ["--tenant", E2E_TENANT, "--tier", "enterprise", "--json", "--admin"]
    proc = pagemill_process(args, env, name="migrate-and-key", module="tests.support.migrate_and_key")
    return str(_printed_key(proc)["secret"])


def migrate(env: Mapping[str, str]) -> None:
    """Run `pagemill migrate` with ``env`` and assert it succeeded."""
    proc = pagemill_process(["migrate"], env, name="migrate")
    code = proc.wait(timeout=120)
    assert code == 0, proc.log_text()


@contextlib.contextmanager
def running_stack(
    env: Mapping[str, str], *, concurrency: int = 2, queues: str = "ingest,cpu,gpu", webhooks: bool = False
) -> Iterator[Stack]:
    """Migrate, start a worker (on ``queues``), with ``webhooks`` a worker on the ``webhooks`` queue (the
    event relay and deliveries: webhooks and NATS need it; without it wanted events wait for one), and the
    API; yield the stack, stop them."""
    full_env = {**TEST_LIMITS, **env}
    key = migrate_and_create_key(full_env)
    with (
        pagemill_worker(full_env, queues=queues, concurrency=concurrency) as worker,
        contextlib.ExitStack() as extra,
        pagemill_api(full_env) as (api, base_url),
    ):
        webhook_worker = None
        if webhooks:
            webhook_worker = extra.enter_context(pagemill_worker(full_env, queues="webhooks", concurrency=2))
        stack = Stack(
            base_url=base_url, env=full_env, worker=worker, api=api, key=key, webhook_worker=webhook_worker
        )
        try:
            yield stack
        finally:
            stack.client.close()
