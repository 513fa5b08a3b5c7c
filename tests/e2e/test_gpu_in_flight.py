"""A GPU worker started without ``--concurrency`` keeps as many pages in flight as its model server needs
to stay full: twice the server's slots, learned from the settings or from the simulator's ``/metrics``
while requests wait there (as vLLM reports them), else the fallback; Celery's own banner says the pool size.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from PIL import Image, ImageDraw

from pagemill.engines.capacity import FALLBACK_IN_FLIGHT
from tests.e2e.stack import TEST_LIMITS, migrate
from tests.support.services import S3Server, distributed_env, pagemill_worker
from tests.support.simulator import SimulatorHandle, vllm_simulator

pytestmark = pytest.mark.e2e

SLOTS = 3


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    # 256 tokens x 100 ms: a request holds its slot ~26 s, long enough to read the queue at worker start.
    with vllm_simulator(max_num_seqs=SLOTS, prefill_ms=10, ms_per_token=100) as handle:
        yield handle


def page_body(model: str) -> dict[str, object]:
    image = Image.new("RGB", (200, 60), "white")
    ImageDraw.Draw(image).text((10, 20), "a page", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Read it."}]
    return {"model": model, "messages": [{"role": "user", "content": content}]}


@contextlib.contextmanager
def busy(sim: SimulatorHandle, requests: int) -> Iterator[None]:
    """Keep ``requests`` pages in flight at the simulator, each on its own connection; closing them at the
    end aborts the requests (the simulator frees the slot of a client that went away, as vLLM does)."""
    body = json.dumps(page_body(sim.model)).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{sim.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    connections = [socket.create_connection(("127.0.0.1", sim.port), timeout=10) for _ in range(requests)]
    try:
        for connection in connections:
            connection.sendall(head + body)
        wait_until(lambda: sim.stats()["waiting"] >= requests - SLOTS, "requests queued at the server")
        yield
    finally:
        for connection in connections:
            connection.close()
        wait_until(lambda: sim.stats()["running"] + sim.stats()["waiting"] == 0, "the server idle again")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("extra_env", "load", "expected", "source"),
    [
        ({}, SLOTS + 2, 2 * SLOTS, "metrics"),
        ({"PAGEMILL_ENGINES__VLLM__MAX_NUM_SEQS": "5"}, 0, 10, "max_num_seqs"),
        ({}, 0, FALLBACK_IN_FLIGHT, "fallback"),
        ({"PAGEMILL_ENGINES__VLLM__REQUESTS_IN_FLIGHT": "7"}, SLOTS + 2, 7, "requests_in_flight"),
    ],
    ids=["busy-server-metrics", "max-num-seqs-setting", "idle-server-fallback", "explicit-setting"],
)
def test_gpu_worker_concurrency_follows_the_server(
    pg_url: str,
    redis_url: str,
    s3: S3Server,
    sim: SimulatorHandle,
    extra_env: dict[str, str],
    load: int,
    expected: int,
    source: str,
) -> None:
    env = {
        **TEST_LIMITS,
        **distributed_env(pg_url, redis_url, s3, bucket="pagemill-gpu-in-flight"),
        "PAGEMILL_ENGINES__DEFAULT": "vllm",
        "PAGEMILL_ENGINES__VLLM__BASE_URL": sim.base_url,
        **extra_env,
    }
    migrate(env)
    with (
        busy(sim, load) if load else contextlib.nullcontext(),
        pagemill_worker(env, queues="gpu", concurrency=None, timeout=90) as worker,
    ):
        log = worker.log_text()
    assert f"GPU worker: {expected} pages in flight" in log, log[-3000:]
    assert f"from {source}" in log
    # Celery's banner: the thread pool really has that many threads.
    assert f"concurrency: {expected} (thread)" in log, log[-3000:]
