"""No job stays active without bound (issue 8, item 1), embedded and distributed.

The stack's only worker consumes ``ingest`` and ``cpu``: pages for a model engine go to the ``gpu`` queue,
which no pool serves, so such a job cannot advance (as when the GPU pool is down or was never deployed).
``remote-openai`` points at a port nothing listens on; ``vllm`` has no server configured at all. The sweeper
runs every second with a 2 s lease, so the bounds below are seconds, not the production minutes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import documents
from tests.support.services import (
    S3Server,
    distributed_env,
    embedded_env,
    free_port,
    pagemill_process,
    pagemill_worker,
    wait_for_log,
)

pytestmark = pytest.mark.e2e

LEASE_S = 2
MAX_REQUEUES = 3
# Every page of a job the sweeper gives up is one lease per re-enqueue plus one to notice, each sweep up to
# a second late; twice that leaves room for a loaded machine.
STALL_BOUND_S = 2 * ((MAX_REQUEUES + 1) * (LEASE_S + 1) + 5)


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def cpu_only_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API + one worker on ``ingest,cpu`` (no GPU pool), a fast sweeper, model servers down or unset."""
    if request.param == "embedded":
        env = embedded_env(tmp_path_factory.mktemp("stuck-embedded"))
    else:
        s3: S3Server = request.getfixturevalue("s3")
        env = distributed_env(request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url"), s3)
    env.update(
        {
            "PAGEMILL_ENGINES__REMOTE_OPENAI__BASE_URL": f"http://127.0.0.1:{free_port()}",
            "PAGEMILL_ENGINES__REMOTE_OPENAI__MAX_RETRIES": "0",
            "PAGEMILL_WORKER__LEASE_S": str(LEASE_S),
            "PAGEMILL_WORKER__MAX_REQUEUES": str(MAX_REQUEUES),
            "PAGEMILL_WORKER__CANCEL_GRACE_S": "1",
        }
    )
    with running_stack(env, queues="ingest,cpu") as stack:
        yield stack


@pytest.fixture
def scan(docs: Path) -> Path:
    """A one-page scanned PDF (no text layer: its page needs OCR)."""
    return documents.make_scanned_pdf(docs / "scan.pdf", ["A page that needs a model server"])


def test_an_engine_without_a_server_is_refused_at_submission(cpu_only_stack: Stack, scan: Path) -> None:
    response = cpu_only_stack.submit(scan, engine="vllm")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "ENGINE_NOT_CONFIGURED"
    assert "PAGEMILL_ENGINES__VLLM__BASE_URL" in error["message"]
    assert error["details"]["settings"] == ["engines.vllm.base_url"]
    # A job that never reads with an engine is not refused for it.
    assert cpu_only_stack.submit(scan, engine="vllm", ocr_mode="text_layer").status_code == 202


def test_a_job_no_worker_can_advance_ends_failed_within_a_bound(cpu_only_stack: Stack, scan: Path) -> None:
    started = time.monotonic()
    job_id = cpu_only_stack.submit_ok(scan, engine="remote-openai", ocr_mode="ocr")
    job = cpu_only_stack.wait(job_id, timeout=STALL_BOUND_S)
    elapsed = time.monotonic() - started
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "JOB_STALLED", job
    assert job["error"]["details"]["requeues"] == MAX_REQUEUES
    page = cpu_only_stack.client.get(f"/api/v1/jobs/{job_id}/pages/1").json()
    assert page["state"] == "failed" and page["error"]["code"] == "JOB_STALLED", page
    # Re-enqueued MAX_REQUEUES times, then given up: not before that many leases have passed.
    assert elapsed >= MAX_REQUEUES * LEASE_S, elapsed


def test_cancel_of_a_job_no_worker_advances_ends_it_cancelled(cpu_only_stack: Stack, scan: Path) -> None:
    job_id = cpu_only_stack.submit_ok(scan, engine="remote-openai", ocr_mode="ocr")
    deadline = time.monotonic() + 30
    # Opened: with ocr_mode=ocr its page goes straight to `gpu`, where nothing takes it.
    while cpu_only_stack.job(job_id)["pages"]["total"] is None:
        assert time.monotonic() < deadline, cpu_only_stack.worker.log_tail()
        time.sleep(0.05)
    response = cpu_only_stack.client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["state"] == "running", response.text

    job = cpu_only_stack.wait(job_id, timeout=10)
    assert job["state"] == "cancelled" and job["error"] is None, job
    page = cpu_only_stack.client.get(f"/api/v1/jobs/{job_id}/pages/1").json()
    assert page["state"] == "skipped", page


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_retried_gpu_task_comes_back_on_the_gpu_queue(cpu_only_stack: Stack, scan: Path, pool: str) -> None:
    """Its server refuses connections: the page task retries (Celery re-publishes it) and the retry must
    reach the GPU pool again, on the embedded SQLite broker as on Redis."""
    args = ["worker", "--queues", "gpu", "--pool", pool, "--concurrency", "2", "--hostname", f"gpu-{pool}@%h"]
    with pagemill_process(args, cpu_only_stack.env, name=f"gpu worker ({pool})") as gpu:
        wait_for_log(gpu, r"\bready\.", 60)
        job_id = cpu_only_stack.submit_ok(scan, engine="remote-openai", ocr_mode="ocr")
        # The first task to retry is this job's: messages left on `gpu` by earlier tests are for jobs
        # that have ended, and those tasks return at once.
        retried = wait_for_log(gpu, r"read_pages\[([0-9a-f-]+)\] retry: Retry in", 30)
        task_id = retried.group(1)
        try:
            # Received twice: its first delivery, then the retry. The retry can be received before the
            # worker has logged "retry" (it is published first), so the order of the lines says nothing.
            wait_for_log(gpu, rf"(?s)(read_pages\[{task_id}\] received.*){{2}}", 30)
        except TimeoutError:
            pytest.fail(
                f"the retry of {task_id} never reached the gpu pool\ngpu worker:\n{gpu.log_tail(30)}\n"
                f"ingest/cpu worker:\n{cpu_only_stack.worker.log_tail(30)}"
            )
        assert not re.search(rf"read_pages\[{task_id}\] received", cpu_only_stack.worker.log_text())
        cpu_only_stack.client.delete(f"/api/v1/jobs/{job_id}")


def test_a_worker_serving_cpu_too_starts_while_the_model_server_is_down(cpu_only_stack: Stack) -> None:
    """`pagemill up` runs one worker on every queue: waiting there for a model server that is down would
    leave ingest and cpu work, and the sweeper, stopped for as long as the server is."""
    env = {**cpu_only_stack.env, "PAGEMILL_ENGINES__DEFAULT": "remote-openai"}
    with pagemill_worker(env, queues="ingest,cpu,gpu", concurrency=1, timeout=45) as worker:
        assert "waiting for engine" not in worker.log_text()
