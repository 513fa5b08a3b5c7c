"""Worker heartbeats in both stores (a folder, the broker's Redis) and the worker's metrics summed over its
processes: counters of ended processes stay, their in-flight gauges go."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pagemill.metrics import multiprocess_registry
from pagemill.observability.heartbeats import (
    FileHeartbeats,
    Heartbeat,
    HeartbeatStore,
    RedisHeartbeats,
    heartbeat_store,
    workers_per_queue,
)
from pagemill.settings import Settings
from tests.support.services import REPO_ROOT, RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["files", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HeartbeatStore]:
    """Each store, empty (a Redis of its own: the hash is shared by everyone on a Redis)."""
    if request.param == "files":
        yield FileHeartbeats(tmp_path / "workers")
    else:
        redis: RedisServer = request.getfixturevalue("private_redis")
        yield RedisHeartbeats(redis.url)


def _heartbeat(store: HeartbeatStore, node: str, queues: list[str], interval_s: float) -> Heartbeat:
    return Heartbeat(store, node=node, queues=queues, pool="prefork", concurrency=2, interval_s=interval_s)


def test_live_workers_per_queue_come_and_go(store: HeartbeatStore) -> None:
    cpu = _heartbeat(store, "cpu@host-a", ["ingest", "cpu"], interval_s=1.0)
    gpu = _heartbeat(store, "gpu@host-b", ["gpu"], interval_s=0.1)
    cpu.start()
    gpu.beat()  # one beat, then silence: as a killed worker
    try:
        beats = store.beats(time.time())
        assert [beat.node for beat in beats] == ["cpu@host-a", "gpu@host-b"]
        assert beats[0].queues == ("cpu", "ingest") and beats[0].concurrency == 2
        assert workers_per_queue(beats)["gpu"] == 1
        # Three intervals without a beat: the silent worker no longer counts; the beating one does.
        time.sleep(0.5)
        assert workers_per_queue(store.beats(time.time())) == {"ingest": 1, "cpu": 1, "gpu": 0, "webhooks": 0}
    finally:
        cpu.stop()
    # A worker that stops warmly removes its beat at once.
    assert [beat.node for beat in store.beats(time.time())] == []


def test_the_store_follows_the_broker(tmp_path: Path, redis_url: str) -> None:
    embedded = heartbeat_store(Settings(data_dir=tmp_path))
    assert isinstance(embedded, FileHeartbeats)
    assert embedded.folder == tmp_path.resolve() / "workers"
    assert isinstance(
        heartbeat_store(Settings(data_dir=tmp_path, broker={"url": redis_url})), RedisHeartbeats
    )


_CHILD = textwrap.dedent(
    """
    from pagemill.metrics import ENGINE_IN_FLIGHT, PAGES
    PAGES.labels(engine="tesseract", outcome="done").inc(3)
    ENGINE_IN_FLIGHT.labels(engine="vllm").inc(2)
    """
)


def _samples(folder: Path) -> dict[tuple[str, str], float]:
    text = generate_latest(multiprocess_registry(str(folder))).decode()
    return {
        (sample.name, next(iter(sample.labels.values()), "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("pagemill_")
    }


def test_metrics_of_ended_processes_keep_their_counts_but_not_their_gauges(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    for _ in range(2):  # two pool processes, one after the other, both gone now
        subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=REPO_ROOT, check=True, timeout=120)
    assert list(tmp_path.glob("gauge_livesum_*.db")), "the children wrote their gauges"
    samples = _samples(tmp_path)
    assert samples[("pagemill_pages_total", "tesseract")] == 6
    assert ("pagemill_engine_requests_in_flight", "vllm") not in samples
    assert not list(tmp_path.glob("gauge_livesum_*.db"))
