"""The pieces behind the metrics: the scrape-time gauges and their cache, queue waits from message headers,
job durations, workers per queue from heartbeats, and the health report's summing up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pagemill.observability import job_metrics
from pagemill.observability.collector import OperationsCollector, snapshot_families
from pagemill.observability.heartbeats import WorkerBeat, _sort_out, workers_per_queue
from pagemill.observability.job_metrics import SENT_AT_HEADER, job_seconds, queue_wait_s
from pagemill.observability.repository import Backlog
from pagemill.observability.schemas import ComponentHealth, MigrationsHealth, QueueHealth
from pagemill.observability.service import OperationsSnapshot, QueueState, age_s, overall_status

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _snapshot(depth: int | None = 3) -> OperationsSnapshot:
    return OperationsSnapshot(
        queues={
            "ingest": QueueState(depth=0, oldest_age_s=0.0, workers=1),
            "cpu": QueueState(depth=depth, oldest_age_s=None if depth is None else 12.5, workers=None),
        },
        dependencies={"database": depth is not None, "broker": True},
    )


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_gauges_show_what_was_read_and_leave_out_what_was_not() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OperationsCollector(lambda: _snapshot(3)))
    samples = _samples(registry)
    assert samples[("pagemill_queue_depth", (("queue", "cpu"),))] == 3
    assert samples[("pagemill_oldest_queued_age_seconds", (("queue", "cpu"),))] == 12.5
    assert samples[("pagemill_queue_workers", (("queue", "ingest"),))] == 1
    assert ("pagemill_queue_workers", (("queue", "cpu"),)) not in samples, "unread: left out, not 0"
    assert samples[("pagemill_dependency_up", (("component", "database"),))] == 1

    down = {family.name: family.samples for family in snapshot_families(_snapshot(None))}
    assert [s.labels["queue"] for s in down["pagemill_queue_depth"]] == ["ingest"]
    assert [(s.labels["component"], s.value) for s in down["pagemill_dependency_up"]] == [
        ("database", 0.0),
        ("broker", 1.0),
    ]


def test_one_reading_serves_every_scrape_until_it_is_older_than_the_ttl() -> None:
    reads: list[int] = []
    now = [100.0]

    def read() -> OperationsSnapshot:
        reads.append(1)
        return _snapshot(len(reads))

    collector = OperationsCollector(read, ttl_s=5.0, clock=lambda: now[0])
    assert list(collector.describe()) == [], "registering reads nothing"
    assert reads == []
    for _ in range(10):
        collector.collect()
    assert len(reads) == 1
    now[0] += 4.9
    assert collector.snapshot().queues["cpu"].depth == 1
    now[0] += 0.2
    assert collector.snapshot().queues["cpu"].depth == 2
    assert len(reads) == 2


def test_queue_wait_runs_from_the_stamp_or_from_the_end_of_a_countdown() -> None:
    sent = NOW.timestamp()
    request = {SENT_AT_HEADER: sent, "delivery_info": {"routing_key": "cpu"}, "eta": None}
    assert queue_wait_s(request, sent + 2.5) == ("cpu", 2.5)
    eta = (NOW + timedelta(seconds=10)).isoformat()
    assert queue_wait_s({**request, "eta": eta}, sent + 12.0) == ("cpu", 2.0)
    # A clock a little behind the publisher's never makes a negative wait.
    assert queue_wait_s(request, sent - 1) == ("cpu", 0.0)
    assert queue_wait_s({**request, SENT_AT_HEADER: None}, sent) is None, "a message of an older release"
    assert queue_wait_s({**request, "delivery_info": {}}, sent) is None


def test_a_job_lasts_from_submission_to_its_end() -> None:
    assert job_seconds(NOW, NOW + timedelta(seconds=90)) == 90
    assert job_seconds(NOW, None) is None


def test_a_stamp_is_put_on_every_message() -> None:
    headers: dict[str, object] = {"id": "x"}
    job_metrics.stamp_sent_at(headers=headers, body=(), exchange="cpu")
    assert isinstance(headers[SENT_AT_HEADER], float)
    job_metrics.stamp_sent_at(headers=None)  # protocol 1 messages have none: nothing to do


def test_the_age_of_a_backlog() -> None:
    assert age_s(Backlog(2, NOW - timedelta(seconds=30)), NOW) == 30
    assert age_s(Backlog(0, None), NOW) == 0
    # A time in another zone is the same instant.
    assert age_s(Backlog(1, (NOW - timedelta(seconds=5)).astimezone(timezone(timedelta(hours=2)))), NOW) == 5


def _beat(node: str, queues: tuple[str, ...], expires_at: float) -> WorkerBeat:
    return WorkerBeat(node, queues, "host", 1, "prefork", 2, 0.0, expires_at - 30, expires_at)


def test_workers_per_queue_count_live_beats_only() -> None:
    now = 1000.0
    stored = [
        ("a", _beat("a@h", ("cpu", "ingest"), now + 10).to_json()),
        ("b", _beat("b@h", ("cpu",), now + 1).to_json()),
        ("c", _beat("c@h", ("gpu",), now - 1).to_json()),  # lapsed: gone, but not yet forgotten
        ("d", _beat("d@h", ("gpu",), now - 7200).to_json()),  # lapsed long ago: deleted
        ("e", "{torn"),
    ]
    beats, stale = _sort_out(stored, now)
    assert [beat.node for beat in beats] == ["a@h", "b@h"]
    assert sorted(stale) == ["d", "e"]
    assert workers_per_queue(beats) == {"ingest": 1, "cpu": 2, "gpu": 0, "webhooks": 0}
    assert WorkerBeat.from_json(beats[0].to_json()) == beats[0]


def _ok() -> ComponentHealth:
    return ComponentHealth(status="ok", latency_ms=1.0)


def test_the_report_sums_up_as_down_degraded_or_ok() -> None:
    migrated = MigrationsHealth(current="h", heads=["h"], up_to_date=True)
    served = {"cpu": QueueHealth(depth=5, oldest_age_s=1.0, workers=1, broker_messages=5)}
    unserved = {"cpu": QueueHealth(depth=5, oldest_age_s=1.0, workers=0, broker_messages=5)}
    down = ComponentHealth(status="down", latency_ms=5000, error="no answer")
    assert overall_status({"database": _ok()}, {"tesseract": _ok()}, served, migrated) == "ok"
    assert overall_status({"database": _ok()}, {"vllm": down}, served, migrated) == "degraded"
    assert overall_status({"database": _ok()}, {}, unserved, migrated) == "degraded"
    assert overall_status({"database": down}, {}, served, None) == "down"
    behind = MigrationsHealth(current="old", heads=["h"], up_to_date=False)
    assert overall_status({"database": _ok()}, {}, served, behind) == "down"
