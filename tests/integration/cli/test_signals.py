"""SIGTERM (what Docker, Kubernetes and systemd send) stops `pagemill up` and `pagemill worker` warmly and
within a bounded time, leaving no process behind: real processes, real signals.

``up`` is signalled alone (``docker stop``) and as a whole process group (a terminal, ``kill -TERM -PGID``,
systemd). The bound is tested with a page that is still being read: a model-server simulator that takes two
minutes per page, and a worker allowed 3 s to finish it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import documents
from tests.support.services import (
    ManagedProcess,
    descendant_pids,
    embedded_env,
    free_port,
    pagemill_process,
    wait_for_log,
    wait_http_ok,
    wait_until,
)
from tests.support.simulator import vllm_simulator

pytestmark = pytest.mark.integration

KEY_PATTERN = re.compile(r"pm_live_[A-Za-z0-9]+")


def alive(pids: list[int]) -> list[int]:
    """The pids that still run (zombies count as ended)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


@contextlib.contextmanager
def running_up(
    tmp_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[ManagedProcess, str]]:
    """`pagemill up` on a fresh data dir, once its API answers and its worker is ready; every process it
    started is SIGKILLed at the end whatever happened (they may live in other process groups)."""
    port = free_port()
    env = {**embedded_env(tmp_path / "data"), "PAGEMILL_LOG_LEVEL": "INFO", **(extra_env or {})}
    proc = pagemill_process(["up", "--port", str(port)], env, name=f"up:{port}", log_path=tmp_path / "up.log")
    seen: set[int] = set()
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base_url}/api/v1/health/live", timeout=120, handle=proc)
        wait_for_log(proc, r"\bready\.", timeout=120)
        yield proc, base_url
    finally:
        seen.update(descendant_pids(proc.pid))
        proc.stop()
        for pid in alive(sorted(seen)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop_and_time(proc: ManagedProcess, *, group: bool, limit: float) -> tuple[float, list[int]]:
    """Send SIGTERM; return how long until `up` and every process it started had ended (up to ``limit``
    seconds), and what was still running then."""
    started = descendant_pids(proc.pid)
    assert len(started) >= 3, f"expected the API, the worker and its pool under up: {started}"
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM, group=group)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: proc.poll() is not None and not alive(started), limit, "up and its children")
    return time.monotonic() - began, alive(started) + ([proc.pid] if proc.poll() is None else [])


@pytest.mark.parametrize("group", [False, True], ids=["up-only", "process-group"])
def test_sigterm_stops_up_with_its_api_and_worker(tmp_path: Path, group: bool) -> None:
    with running_up(tmp_path) as (proc, base_url):
        # The first start's banner shows a request that works as printed.
        assert "Bearer pm_live_" in proc.log_text() and f"{base_url}/api/v1/usage" in proc.log_text()
        assert "HOST:PORT" not in proc.log_text()
        took, left = stop_and_time(proc, group=group, limit=40)
        assert left == [], f"still running {took:.1f}s after SIGTERM: {left}\n{proc.log_tail()}"
        assert took < 20, f"an idle up took {took:.1f}s to stop\n{proc.log_tail()}"
        assert proc.returncode == 0, proc.log_tail()
        assert "Warm shutdown" in proc.log_text(), "the worker shut down warmly"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base_url}/api/v1/health/live", timeout=2)


def test_sigterm_during_a_long_page_stops_within_the_shutdown_timeout(tmp_path: Path) -> None:
    # Each page takes the simulated model server two minutes: the worker cannot finish it in time.
    with vllm_simulator(ocr="tesseract", max_num_seqs=4, prefill_ms=120_000) as sim:
        env = {
            "PAGEMILL_ENGINES__VLLM__BASE_URL": sim.base_url,
            "PAGEMILL_WORKER__SHUTDOWN_TIMEOUT_S": "3",
        }
        with running_up(tmp_path, env) as (proc, base_url):
            (secret,) = set(KEY_PATTERN.findall(proc.log_text()))
            image = documents.make_text_image(tmp_path / "slow.png", "A page read slowly", fmt="PNG")
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}) as client:
                with image.open("rb") as f:
                    answer = client.post(
                        "/api/v1/documents", files={"file": ("slow.png", f)}, data={"engine": "vllm"}
                    )
                assert answer.status_code == 202, answer.text
            wait_until(lambda: sim.stats()["running"] >= 1, 90, "the page to reach the model server")

            took, left = stop_and_time(proc, group=False, limit=60)
            assert left == [], f"still running {took:.1f}s after SIGTERM: {left}\n{proc.log_tail()}"
            # 3 s of warm shutdown, then Celery's cold shutdown; well before up's own SIGKILL at 35 s.
            assert took < 25, f"took {took:.1f}s\n{proc.log_tail()}"
            assert "cold shutdown" in proc.log_text(), proc.log_tail()


def test_up_starts_its_worker_again_when_it_dies(tmp_path: Path) -> None:
    """A worker that exits on its own (the OOM killer; a wedged pool exiting for a fresh one) is started
    again by `pagemill up`, which keeps serving, and work goes on."""
    with running_up(tmp_path) as (proc, base_url):
        key = KEY_PATTERN.search(proc.log_text())
        assert key is not None
        # Two workers: pages (ingest,cpu,gpu) and events (webhooks); the page worker is killed.
        wait_until(lambda: len(re.findall(r"\bready\.", proc.log_text())) >= 2, 120, "both workers")
        workers = [
            pid
            for pid in descendant_pids(proc.pid, recursive=False)
            if b"ingest" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)
        wait_for_log(proc, r"worker exited with -9; starting it again", timeout=30)
        wait_until(lambda: len(re.findall(r"\bready\.", proc.log_text())) >= 3, 120, "the new worker")
        headers = {"Authorization": f"Bearer {key.group(0)}"}
        pdf = documents.make_text_pdf(tmp_path / "after.pdf", ["Read after a restart"])
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            job = client.post("/api/v1/documents", files={"file": ("after.pdf", pdf.read_bytes())}).json()
            deadline = time.monotonic() + 60
            while job["state"] not in ("succeeded", "failed", "cancelled"):
                assert time.monotonic() < deadline, (job, proc.log_tail())
                time.sleep(0.2)
                job = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert job["state"] == "succeeded", job
        assert proc.poll() is None, "up keeps running"
