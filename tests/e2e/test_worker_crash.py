"""kill -9 in the middle of a job: the job still succeeds once, with the same output as a clean run."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import documents
from tests.support.poison.sitecustomize import POISON_MARK
from tests.support.services import (
    REPO_ROOT,
    RedisServer,
    S3Server,
    distributed_env,
    embedded_env,
    pagemill_worker,
    wait_until,
)

pytestmark = pytest.mark.e2e

TEXTS = [f"Crash test page {n} survives" for n in range(1, 7)]
POISON_DIR = Path(__file__).resolve().parents[1] / "support" / "poison"


@pytest.fixture
def crash_stack(pg_url: str, private_redis: RedisServer, s3: S3Server) -> Iterator[Stack]:
    """A distributed stack on a Redis of its own (so no other test's worker takes its messages)."""
    env = distributed_env(pg_url, private_redis.url, s3, bucket="pagemill-crash")
    env["PAGEMILL_WORKER__LEASE_S"] = "6"
    with running_stack(env) as stack:
        yield stack


def _wait_for_progress(stack: Stack, job_id: str) -> None:
    deadline = time.monotonic() + 90
    while stack.job(job_id)["pages"]["done"] < 1:
        assert time.monotonic() < deadline, stack.worker.log_tail()
        time.sleep(0.05)


def _wait_for_a_page_in_flight(stack: Stack, job_id: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        pages = [stack.client.get(f"/api/v1/jobs/{job_id}/pages/{n}").json() for n in range(1, 7)]
        if any(page["state"] == "pending" and page["attempts"] >= 1 for page in pages):
            return
        assert time.monotonic() < deadline, (pages, stack.worker.log_tail())
        time.sleep(0.05)


def test_kill9_of_pool_processes_mid_job(crash_stack: Stack, docs: Path) -> None:
    pdf = documents.make_scanned_pdf(docs / "scan.pdf", TEXTS)
    clean = crash_stack.wait(crash_stack.submit_ok(pdf, formats="text"))
    assert clean["state"] == "succeeded"
    expected = crash_stack.result(clean["id"], "text").text

    job_id = crash_stack.submit_ok(pdf, formats="text")
    _wait_for_progress(crash_stack, job_id)
    # Kill while a page is being read (claimed: pending with an attempt counted), not in the moment between
    # two pages that a busy machine can stretch (the kill then interrupted nothing).
    _wait_for_a_page_in_flight(crash_stack, job_id)
    children = crash_stack.worker.child_pids(recursive=False)
    assert children, "the prefork pool has child processes"
    for pid in children:
        crash_stack.worker.kill9(pid)

    job = crash_stack.wait(job_id, timeout=120)
    assert job["state"] == "succeeded", job
    assert job["pages"] == {"total": 6, "done": 6, "failed": 0}
    assert crash_stack.result(job_id, "text").text == expected
    attempts = [
        crash_stack.client.get(f"/api/v1/jobs/{job_id}/pages/{n}").json()["attempts"] for n in range(1, 7)
    ]
    assert max(attempts) >= 2, f"a page was interrupted and read again: {attempts}"
    assert "SIGKILL" in crash_stack.worker.log_text()


def test_kill9_of_whole_worker_is_recovered_by_the_sweeper(crash_stack: Stack, docs: Path) -> None:
    pdf = documents.make_scanned_pdf(docs / "scan.pdf", TEXTS)
    job_id = crash_stack.submit_ok(pdf, formats="text")
    _wait_for_progress(crash_stack, job_id)
    crash_stack.worker.send_signal(signal.SIGKILL, group=True)
    crash_stack.worker.wait(timeout=10)
    # A new worker finds the stalled job once its lease (6 s) has run out and finishes it.
    with pagemill_worker(crash_stack.env, queues="ingest,cpu,gpu", concurrency=2) as replacement:
        job = crash_stack.wait(job_id, timeout=120)
        assert job["state"] == "succeeded", (job, replacement.log_tail())
    text = crash_stack.result(job_id, "text").text.lower()
    for n in range(1, 7):
        assert f"crash test page {n}" in text


def test_a_poison_page_that_kills_its_worker_every_time_is_given_up(
    pg_url: str, private_redis: RedisServer, s3: S3Server, docs: Path
) -> None:
    """Reliability scenario 4: the page fails WORKER_CRASHED after worker.max_attempts, once, no hot loop;
    the other pages of the document are read and the worker keeps serving."""
    env = distributed_env(pg_url, private_redis.url, s3, bucket="pagemill-poison")
    env["PYTHONPATH"] = os.pathsep.join([str(POISON_DIR), str(REPO_ROOT)])
    pages = ["A healthy first page of text", f"{POISON_MARK} on the second page", "A healthy third page"]
    with running_stack(env) as stack:
        job = stack.wait(stack.submit_ok(documents.make_text_pdf(docs / "poison.pdf", pages)), timeout=120)
        assert job["state"] == "succeeded", job  # partial: two of three pages
        assert job["pages"] == {"total": 3, "done": 2, "failed": 1}
        poisoned = stack.client.get(f"/api/v1/jobs/{job['id']}/pages/2").json()
        assert poisoned["state"] == "failed" and poisoned["error"]["code"] == "WORKER_CRASHED"
        assert poisoned["attempts"] == 3, "exactly max_attempts deliveries, then given up"
        crash = r"Process '\S+' pid:\d+ exited with 'signal 9 \(SIGKILL\)'"
        # The worker logs a pool process's death after reaping it, and the sweeper may offer the page
        # again (and the job end) a moment before that line is written: wait for it, then make sure no
        # further crash follows.
        wait_until(lambda: len(re.findall(crash, stack.worker.log_text())) >= 3, 15, "three crashes logged")
        time.sleep(2)
        assert len(re.findall(crash, stack.worker.log_text())) == 3, "no hot loop: one crash per attempt"
        for number in (1, 3):
            assert stack.client.get(f"/api/v1/jobs/{job['id']}/pages/{number}").json()["state"] == "done"
        after = stack.wait(
            stack.submit_ok(documents.make_text_pdf(docs / "next.pdf", ["Still serving pages"]))
        )
        assert after["state"] == "succeeded"


def test_embedded_worker_takes_work_again_after_its_idle_pool_is_killed(tmp_path: Path, docs: Path) -> None:
    """On the embedded broker Celery's pool processes share one input lock, held by an idle process while
    it waits for a task. SIGKILL of the idle pool (an OOM kill, say) left the lock taken forever: the new
    pool processes blocked on it and the worker never took work again. The pool watchdog gives it back."""
    with running_stack(embedded_env(tmp_path / "data")) as stack:
        warm = stack.wait(stack.submit_ok(documents.make_text_pdf(docs / "warm.pdf", ["Warm up"])))
        assert warm["state"] == "succeeded", warm
        time.sleep(1.0)  # idle: one pool process waits for a task holding the lock
        pool = stack.worker.child_pids(recursive=False)
        assert len(pool) == 2, pool
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        job = stack.wait(stack.submit_ok(documents.make_text_pdf(docs / "after.pdf", TEXTS[:2])), timeout=90)
        assert job["state"] == "succeeded", (job, stack.worker.log_tail())
        assert "the lock was given back" in stack.worker.log_text()
