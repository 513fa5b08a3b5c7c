"""Metrics, logs and health of a running Pagemill after real jobs.

Distributed: the API's /metrics (its counts, the queue and dependency gauges) and the worker's metrics port
(the sum of its processes). Embedded as `pagemill up` runs it: API and worker share one multiprocess folder,
and the API's /metrics is the one place to scrape. Each mode has a database and a broker of its own, so
every count is exactly this module's.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack, running_stack
from tests.support import documents, services
from tests.support.services import S3Server, distributed_env, embedded_env, free_port

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PDFS = {
    "two.pdf": ["Metrics page one", "Metrics page two"],
    "three.pdf": ["Alpha text", "Bravo text", "Charlie"],
}


@dataclass
class MetricsRun:
    """A stack after two PDF jobs (5 pages) ended: where its worker's metrics are served, the jobs and the
    request ids of their submissions."""

    mode: str
    stack: Stack
    worker_metrics_url: str
    job_ids: list[str]
    request_ids: list[str]


@pytest.fixture(scope="module", params=["distributed", "embedded"])
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3: S3Server
) -> Iterator[MetricsRun]:
    own = contextlib.ExitStack()
    with own:
        if request.param == "distributed":
            pg_url = own.enter_context(services.postgres_url())
            redis = own.enter_context(services.redis_server())
            env = distributed_env(pg_url, redis.url, s3, bucket="pagemill-metrics")
            port = free_port()
            env["PAGEMILL_WORKER__METRICS_PORT"] = str(port)
        else:
            env = embedded_env(tmp_path_factory.mktemp("metrics-embedded"))
            # What `pagemill up` gives its API and workers: one folder for every process's metrics.
            env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path_factory.mktemp("metrics-multiproc"))
        env["PAGEMILL_WORKER__HEARTBEAT_INTERVAL_S"] = "1"
        stack = own.enter_context(running_stack(env))
        docs = tmp_path_factory.mktemp("metrics-docs")
        submitted = [
            stack.submit(documents.make_text_pdf(docs / name, pages)) for name, pages in PDFS.items()
        ]
        assert all(response.status_code == 202 for response in submitted), [r.text for r in submitted]
        job_ids = [str(response.json()["id"]) for response in submitted]
        for job_id in job_ids:
            assert stack.wait(job_id)["state"] == "succeeded"
        worker_url = f"http://127.0.0.1:{port}/metrics" if request.param == "distributed" else ""
        yield MetricsRun(
            mode=request.param,
            stack=stack,
            worker_metrics_url=worker_url or f"{stack.base_url}/metrics",
            job_ids=job_ids,
            request_ids=[response.headers["x-request-id"] for response in submitted],
        )


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus endpoint, by name and labels."""
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly ``labels``, or None."""
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, sample_labels), v in samples.items() if n == name and wanted <= sample_labels)


def wait_for(check: Any, what: str, timeout: float = 20) -> Any:
    """Retry ``check`` (an assertion) until it passes: gauges are cached 5 s, counts land at commit."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}") from None
            time.sleep(0.5)


def test_the_api_serves_job_counts_and_queue_gauges(run: MetricsRun) -> None:
    def settled() -> Samples:
        samples = scrape(f"{run.stack.base_url}/metrics")
        for queue in ("ingest", "cpu", "gpu", "webhooks"):
            assert value(samples, "pagemill_queue_depth", queue=queue) == 0, queue
            assert value(samples, "pagemill_oldest_queued_age_seconds", queue=queue) == 0, queue
        return samples

    samples = wait_for(settled, "empty queues")
    assert value(samples, "pagemill_jobs_submitted_total", kind="pdf") == 2
    for component in ("database", "broker", "storage"):
        assert value(samples, "pagemill_dependency_up", component=component) == 1, component
    # The worker consumes ingest, cpu and gpu; none consumes webhooks (its heartbeats say so).
    workers = {
        q: value(samples, "pagemill_queue_workers", queue=q) for q in ("ingest", "cpu", "gpu", "webhooks")
    }
    assert workers == {"ingest": 1, "cpu": 1, "gpu": 1, "webhooks": 0}
    assert total(samples, "http_requests_total", handler="/api/v1/documents", method="POST") == 2


def test_the_worker_counts_pages_jobs_and_waits(run: MetricsRun) -> None:
    samples = scrape(run.worker_metrics_url)
    assert total(samples, "pagemill_pages_total", outcome="done") == 5
    assert total(samples, "pagemill_pages_total") == 5, "no page failed"
    assert value(samples, "pagemill_jobs_completed_total", kind="pdf", outcome="succeeded") == 2
    assert value(samples, "pagemill_job_duration_seconds_count", kind="pdf") == 2
    assert value(samples, "pagemill_job_duration_seconds_sum", kind="pdf") > 0  # type: ignore[operator]
    assert (value(samples, "pagemill_queue_wait_seconds_count", queue="ingest") or 0) >= 2
    if run.mode == "distributed":
        # The worker's port serves the worker's counts only: submissions are counted by the API.
        assert value(samples, "pagemill_jobs_submitted_total", kind="pdf") is None


def test_the_detailed_health_report_lists_the_worker(run: MetricsRun) -> None:
    with run.stack.client_for(None) as anonymous:
        assert anonymous.get("/api/v1/health").status_code == 401
    response = run.stack.client.get("/api/v1/health")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["mode"] == run.mode
    assert {name: c["status"] for name, c in report["components"].items()} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
    }
    [worker] = report["workers"]
    assert sorted(worker["queues"]) == ["cpu", "gpu", "ingest"]
    assert worker["pool"] == "prefork" and worker["concurrency"] == 2
    assert report["queues"]["cpu"]["workers"] == 1 and report["queues"]["webhooks"]["workers"] == 0
    assert report["migrations"]["up_to_date"] is True


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                lines.append(parsed)
    return lines


def test_log_lines_are_json_with_request_job_and_task_ids(run: MetricsRun) -> None:
    api_lines = _json_lines(run.stack.api.log_text())
    access = [line for line in api_lines if line.get("logger") == "pagemill.access"]
    submissions = [line for line in access if line.get("path") == "/api/v1/documents"]
    assert {line["request_id"] for line in submissions} == set(run.request_ids)
    assert all(line["status"] == 202 and line["tenant"] == "e2e" for line in submissions)

    worker_lines = _json_lines(run.stack.worker.log_text())
    with_job = [line for line in worker_lines if line.get("job_id") in run.job_ids]
    assert with_job, "a worker line names the job it worked on"
    ingest_done = [line for line in with_job if "ingest_job" in str(line.get("task")) and line.get("task_id")]
    assert {line["job_id"] for line in ingest_done} == set(run.job_ids), "each ingest task's lines carry both"
    assert all(line["tenant"] == "e2e" for line in ingest_done if "tenant" in line)
