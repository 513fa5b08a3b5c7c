"""The GPU pool end to end: OCR pages go to a thread-pool worker that calls a vLLM-compatible server
(the simulator, answering with real Tesseract text); failures fall back down the engine chain; text-layer
pages never touch the GPU; a down server routes pages to the CPU pool; kill -9 mid-batch loses nothing."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import TEST_LIMITS, Stack, migrate_and_create_key
from tests.support import documents
from tests.support.services import (
    REPO_ROOT,
    ManagedProcess,
    S3Server,
    distributed_env,
    free_port,
    pagemill_api,
    pagemill_process,
    pagemill_worker,
    start_process,
    wait_for_log,
)
from tests.support.simulator import SimulatorHandle, vllm_simulator

pytestmark = pytest.mark.e2e

TEXT = "Quarterly invoice total\nPayment due in thirty days"


@dataclass
class GpuStack(Stack):
    """A stack whose OCR pages go to a separate GPU worker (a thread pool)."""

    gpu_worker: ManagedProcess | None = None
    gpu_metrics_url: str | None = None


@contextlib.contextmanager
def gpu_stack(env: dict[str, str], *, gpu_worker: bool = True) -> Iterator[GpuStack]:
    """API + a CPU worker (ingest, cpu) + a GPU worker (gpu, threads) on ``env``."""
    full_env = {**TEST_LIMITS, **env}
    key = migrate_and_create_key(full_env)
    with contextlib.ExitStack() as stack:
        cpu = stack.enter_context(pagemill_worker(full_env, queues="ingest,cpu", concurrency=1))
        metrics_port = free_port()
        gpu_env = {**full_env, "PAGEMILL_WORKER__METRICS_PORT": str(metrics_port)}
        gpu = (
            stack.enter_context(pagemill_worker(gpu_env, queues="gpu", concurrency=4)) if gpu_worker else None
        )
        api, base_url = stack.enter_context(pagemill_api(full_env))
        running = GpuStack(
            base_url=base_url,
            env=full_env,
            worker=cpu,
            api=api,
            key=key,
            gpu_worker=gpu,
            gpu_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        )
        try:
            yield running
        finally:
            running.client.close()  # also when the test failed: a client left to the GC warns in a later test


def engine_env(pg_url: str, redis_url: str, s3: S3Server, base_url: str) -> dict[str, str]:
    return {
        **distributed_env(pg_url, redis_url, s3, bucket="pagemill-gpu"),
        "PAGEMILL_ENGINES__DEFAULT": "vllm",
        "PAGEMILL_ENGINES__FALLBACK": '["tesseract"]',
        "PAGEMILL_ENGINES__VLLM__BASE_URL": base_url,
        "PAGEMILL_ENGINES__VLLM__MAX_RETRIES": "2",
        "PAGEMILL_ENGINES__VLLM__RETRY_BACKOFF_S": "0.05",
        "PAGEMILL_ENGINES__HEALTH_CACHE_S": "1",
        "PAGEMILL_WORKER__LEASE_S": "6",
    }


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with vllm_simulator(ocr="tesseract", max_num_seqs=4, prefill_ms=20, ms_per_token=0.2) as handle:
        yield handle


@pytest.fixture(scope="module")
def gpu(pg_url: str, redis_url: str, s3: S3Server, sim: SimulatorHandle) -> Iterator[GpuStack]:
    with gpu_stack(engine_env(pg_url, redis_url, s3, sim.base_url)) as stack:
        yield stack


@pytest.fixture(autouse=True)
def _clean_faults(sim: SimulatorHandle) -> None:
    sim.set_faults(
        drop=0,
        overload_503=0,
        rate_limit_429=0,
        context_length_400=0,
        truncate=0,
        repeat=0,
        empty=0,
        slow_ms=0,
    )


def page(stack: Stack, job_id: str, number: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = stack.client.get(f"/api/v1/jobs/{job_id}/pages/{number}").json()
    return body


def completed(sim: SimulatorHandle) -> int:
    return int(sim.stats()["completed"])


def test_scanned_pages_are_read_by_the_gpu_engine(gpu: Stack, sim: SimulatorHandle, docs: Path) -> None:
    before = completed(sim)
    pdf = documents.make_scanned_pdf(docs / "scan.pdf", [TEXT, "Second page of the scan", "Third and last"])
    job = gpu.wait(gpu.submit_ok(pdf), timeout=120)
    assert job["state"] == "succeeded", job
    pages = [page(gpu, job["id"], n) for n in (1, 2, 3)]
    assert {p["engine"] for p in pages} == {"vllm"}
    assert {p["model"] for p in pages} == {sim.model}
    assert "quarterly invoice total" in pages[0]["text"].lower()
    assert "third and last" in pages[2]["text"].lower()
    assert completed(sim) - before == 3
    ready = gpu.client.get("/api/v1/health/ready").json()
    assert ready["engines"] == {"vllm": "ok", "tesseract": "ok"}


def test_text_layer_pages_never_touch_the_gpu(gpu: Stack, sim: SimulatorHandle, docs: Path) -> None:
    before = completed(sim)
    pdf = documents.make_text_pdf(
        docs / "digital.pdf", ["A born-digital page with its text layer", "Another page with plenty of text"]
    )
    job = gpu.wait(gpu.submit_ok(pdf))
    assert job["state"] == "succeeded"
    assert page(gpu, job["id"])["engine"] == "text_layer"
    assert completed(sim) == before


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("truncate", "truncated"),
        ("context_length_400", "context_length"),
        ("repeat", "degenerate_repetition"),
    ],
)
def test_unusable_answers_fall_back_to_the_next_engine(
    gpu: Stack, sim: SimulatorHandle, docs: Path, fault: str, reason: str
) -> None:
    sim.set_faults(**{fault: 1})
    image = documents.make_text_image(docs / "page.png", TEXT)
    job = gpu.wait(gpu.submit_ok(image), timeout=120)
    assert job["state"] == "succeeded", job
    read = page(gpu, job["id"])
    assert read["engine"] == "tesseract"
    assert read["settings"]["fallbacks"] == [{"engine": "vllm", "code": "ENGINE_FAILED", "reason": reason}]
    assert "quarterly invoice total" in read["text"].lower()


@pytest.mark.parametrize("fault", ["overload_503", "rate_limit_429", "drop"])
def test_transient_errors_are_retried_on_the_same_engine(
    gpu: Stack, sim: SimulatorHandle, docs: Path, fault: str
) -> None:
    sim.set_faults(**{fault: 1})
    image = documents.make_text_image(docs / "page.png", TEXT)
    job = gpu.wait(gpu.submit_ok(image), timeout=120)
    assert job["state"] == "succeeded", job
    read = page(gpu, job["id"])
    assert read["engine"] == "vllm" and "fallbacks" not in read["settings"]
    assert read["settings"]["attempts"] >= 2
    assert "quarterly invoice total" in read["text"].lower()


def test_fallbacks_and_pages_are_counted_in_the_workers_metrics(gpu: GpuStack) -> None:
    assert gpu.gpu_metrics_url is not None
    metrics = httpx.get(gpu.gpu_metrics_url, timeout=10).text
    for reason in ("truncated", "context_length", "degenerate_repetition"):
        assert f'pagemill_engine_fallbacks_total{{engine="vllm",reason="{reason}"}} 1.0' in metrics
    assert 'pagemill_pages_total{engine="vllm",outcome="done"}' in metrics
    assert 'pagemill_pages_total{engine="tesseract",outcome="done"} 3.0' in metrics


def test_an_empty_answer_is_a_blank_page_not_an_error(gpu: Stack, sim: SimulatorHandle, docs: Path) -> None:
    sim.set_faults(empty=1)
    job = gpu.wait(gpu.submit_ok(documents.make_text_image(docs / "page.png", TEXT)), timeout=120)
    read = page(gpu, job["id"])
    assert job["state"] == "succeeded" and read["engine"] == "vllm" and read["text"] == ""


def test_kill9_of_the_gpu_worker_mid_batch(gpu: GpuStack, sim: SimulatorHandle, docs: Path) -> None:
    sim.set_faults(slow_ms=1500)
    texts = [f"Page {n} of the batch" for n in range(1, 7)]
    job_id = gpu.submit_ok(documents.make_scanned_pdf(docs / "batch.pdf", texts))
    deadline = time.monotonic() + 120
    while gpu.job(job_id)["pages"]["done"] < 1:  # the others are in flight then (1.5 s per answer)
        assert time.monotonic() < deadline, sim.stats()
        time.sleep(0.05)
    assert gpu.gpu_worker is not None
    gpu.gpu_worker.send_signal(signal.SIGKILL, group=True)  # pages in flight die with it
    gpu.gpu_worker.wait(timeout=10)
    sim.set_faults(slow_ms=0)
    with pagemill_worker(gpu.env, queues="gpu", concurrency=4):
        job = gpu.wait(job_id, timeout=120)
    assert job["state"] == "succeeded", job
    pages = [page(gpu, job_id, n) for n in range(1, 7)]
    assert {p["engine"] for p in pages} == {"vllm"}
    for n, read in enumerate(pages, start=1):
        assert f"page {n} of the batch" in read["text"].lower()


def test_a_down_server_routes_pages_to_the_cpu_pool(
    pg_url: str, redis_url: str, s3: S3Server, docs: Path
) -> None:
    # Bound but never listening: connections are refused, and no other process of a parallel run can take
    # the port while the test runs (a bare free port number could be taken and answer /v1/models).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{holder.getsockname()[1]}"
        _route_around_a_down_server(pg_url, redis_url, s3, closed, docs)


def _route_around_a_down_server(pg_url: str, redis_url: str, s3: S3Server, closed: str, docs: Path) -> None:
    with gpu_stack(engine_env(pg_url, redis_url, s3, closed), gpu_worker=False) as stack:
        assert stack.client.get("/api/v1/health/ready").json()["engines"]["vllm"] == "unavailable"
        # 240 s: one page, but on a loaded 2-core machine the suite runs other stacks beside this one.
        job = stack.wait(stack.submit_ok(documents.make_text_image(docs / "page.png", TEXT)), timeout=240)
        assert job["state"] == "succeeded", job
        read = page(stack, job["id"])
        assert read["engine"] == "tesseract" and "fallbacks" not in read["settings"]


def test_a_gpu_worker_takes_no_work_until_its_model_is_served(
    pg_url: str, redis_url: str, s3: S3Server, tmp_path: Path
) -> None:
    port = free_port()
    env = {**TEST_LIMITS, **engine_env(pg_url, redis_url, s3, f"http://127.0.0.1:{port}")}
    worker = pagemill_process(["worker", "--queues", "gpu", "--concurrency", "2"], env, name="gpu-waiting")
    try:
        wait_for_log(worker, r"waiting for engine vllm's server", timeout=30)
        time.sleep(2)
        assert not re.search(r"\bready\.", worker.log_text()), (
            "it must not consume before the model is served"
        )
        sim_cmd = [sys.executable, "-m", "tests.support.vllm_simulator", "--port", str(port)]
        with start_process(sim_cmd, {"PYTHONPATH": str(REPO_ROOT)}, name="late-sim", cwd=REPO_ROOT) as sim:
            wait_for_log(worker, r"engine vllm is ready", timeout=30)
            wait_for_log(worker, r"\bready\.", timeout=30)
            assert sim.is_running()
    finally:
        worker.stop()
