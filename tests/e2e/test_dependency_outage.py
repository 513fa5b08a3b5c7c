"""Reliability scenario 3: Redis and Postgres go down and come back under in-flight jobs. While a
dependency is down the API answers 503 with Retry-After (never 500) or accepts work it can record; when it is
back, every accepted job ends in a final state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import documents
from tests.support.services import PostgresServer, RedisServer, S3Server, distributed_env, postgres_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    """A Postgres cluster of this test's own, safe to stop and start."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def outage_stack(pg: PostgresServer, private_redis: RedisServer, s3: S3Server) -> Iterator[Stack]:
    env = distributed_env(pg.url(), private_redis.url, s3, bucket="pagemill-outage")
    env["PAGEMILL_WORKER__LEASE_S"] = "5"
    with running_stack(env) as stack:
        yield stack


def submit_many(stack: Stack, docs: Path, count: int, tag: str, *, scanned: bool = False) -> list[str]:
    """Submit ``count`` one-page documents; scanned ones take ~1.5 s of OCR each, so they are in flight."""
    make = documents.make_scanned_pdf if scanned else documents.make_text_pdf
    return [
        stack.submit_ok(make(docs / f"{tag}-{n}.pdf", [f"Document {tag} {n} text"])) for n in range(count)
    ]


def wait_until_running(stack: Stack, job_ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    while not any(stack.job(job_id)["state"] == "running" for job_id in job_ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def all_final(stack: Stack, job_ids: list[str], timeout: float = 120) -> list[dict[str, object]]:
    return [stack.wait(job_id, timeout=timeout) for job_id in job_ids]


def test_a_redis_outage_loses_no_accepted_job(
    outage_stack: Stack, private_redis: RedisServer, docs: Path
) -> None:
    before = submit_many(outage_stack, docs, 6, "before", scanned=True)
    wait_until_running(outage_stack, before)
    # The throwaway Redis keeps nothing on disk: queued and unacknowledged messages are gone with it.
    private_redis.stop()
    # The job is recorded in Postgres and its file in S3; its message cannot be published now.
    during = submit_many(outage_stack, docs, 3, "during")
    assert outage_stack.client.get(f"/api/v1/jobs/{during[0]}").status_code == 200
    private_redis.start()
    jobs = all_final(outage_stack, before + during)
    assert {job["state"] for job in jobs} == {"succeeded"}, jobs


def test_a_postgres_outage_gives_503_not_500_and_loses_no_accepted_job(
    outage_stack: Stack, pg: PostgresServer, docs: Path
) -> None:
    accepted = submit_many(outage_stack, docs, 6, "inflight", scanned=True)
    wait_until_running(outage_stack, accepted)
    pg.stop()
    try:
        for response in (
            outage_stack.client.get(f"/api/v1/jobs/{accepted[0]}"),
            outage_stack.client.get("/api/v1/jobs"),
            outage_stack.submit(documents.make_text_pdf(docs / "refused.pdf", ["Not recorded"])),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
            assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        ready = outage_stack.client.get("/api/v1/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
        assert outage_stack.client.get("/api/v1/health/live").status_code == 200
        time.sleep(2)  # workers meet the outage mid-job
    finally:
        pg.start()
    jobs = all_final(outage_stack, accepted)
    assert {job["state"] for job in jobs} == {"succeeded"}, jobs
    assert outage_stack.client.get("/api/v1/health/ready").status_code == 200
