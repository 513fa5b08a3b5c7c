"""A GPU worker renders its pages in render processes: killing them mid-job costs no page and not the worker,
and they leave with the worker when it is killed."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_gpu_pool import engine_env, gpu_stack, page
from tests.support import documents
from tests.support.services import S3Server
from tests.support.simulator import vllm_simulator

pytestmark = pytest.mark.e2e


def render_processes(worker_pid: int) -> list[int]:
    """The live render processes started by ``worker_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat[0], int(stat[1])
        if ppid == worker_pid and state not in ("Z", "X") and b"pagemill.documents.render_child" in cmdline:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its new parent to reap it has left)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) not in ("Z", "X")
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_killed_render_processes_cost_no_page_and_leave_with_their_worker(
    pg_url: str, redis_url: str, s3: S3Server, docs: Path
) -> None:
    texts = [f"Page {n} of the render pool batch" for n in range(1, 13)]
    path = documents.make_scanned_pdf(docs / "batch.pdf", texts)
    with (
        vllm_simulator(ocr="tesseract", max_num_seqs=4, prefill_ms=20, ms_per_token=0.2) as sim,
        gpu_stack(engine_env(pg_url, redis_url, s3, sim.base_url)) as gpu,
    ):
        assert gpu.gpu_worker is not None
        worker = gpu.gpu_worker.pid
        job_id = gpu.submit_ok(path, ocr_mode="ocr", engine="vllm")
        killed: list[int] = []
        stop = threading.Event()

        def page_settled(client: httpx.Client, number: int) -> bool:
            state = client.get(f"/api/v1/jobs/{job_id}/pages/{number}").json()["state"]
            return state != "pending" or stop.is_set()

        def kill_render_processes() -> None:
            # Twice, whatever each process was doing (rendering a page, or waiting for one). A page whose
            # process died is rendered once more, and a second death fails it by design (a poison page):
            # so the second kill waits until the page the first one hit (its worker logs which) is settled.
            assert gpu.gpu_worker is not None
            with gpu.client_for(gpu.key) as client:  # its own: the test's thread polls the job meanwhile
                while len(killed) < 2 and not stop.is_set():
                    victims = render_processes(worker)
                    if not victims:
                        stop.wait(0.01)
                        continue
                    os.kill(victims[0], signal.SIGKILL)
                    killed.append(victims[0])
                    died = re.compile(rf"render process {victims[0]} died on page (\d+)")
                    deadline = time.monotonic() + 10  # an idle process's death is noticed silently, if at all
                    while not stop.is_set() and time.monotonic() < deadline:
                        if found := died.search(gpu.gpu_worker.log_text()):
                            wait_for(lambda: page_settled(client, int(found[1])), "its page", 120)
                            break
                        stop.wait(0.05)

        killer = threading.Thread(target=kill_render_processes)
        killer.start()
        try:
            job = gpu.wait(job_id, timeout=180)
        finally:
            stop.set()
            killer.join()
        assert len(killed) == 2
        assert job["state"] == "succeeded", job
        for number, text in enumerate(texts, start=1):
            read = page(gpu, job_id, number)
            assert read["engine"] == "vllm" and text.lower() in read["text"].lower(), read
        assert gpu.gpu_worker.is_running()
        alive = render_processes(worker)
        assert alive and not set(alive) & set(killed)

        gpu.gpu_worker.send_signal(signal.SIGKILL, group=False)  # the worker alone, as the OOM killer would
        gpu.gpu_worker.wait(timeout=10)
        wait_for(lambda: not any(running(pid) for pid in alive), "the render processes to leave", timeout=10)
