"""Webhook deliveries per second to a local receiver, and the delay from event to delivery.

``python -m bench webhook_delivery`` (``--jobs``, ``--pages``; ``--no-distributed``: embedded only)

A stack with its webhooks worker (threads, `webhooks.worker_threads`) and `egress.allow_networks` opening
127.0.0.0/8; one endpoint of the tenant subscribed to every type, job.page_completed included, pointing at
a real HTTP receiver in this process (a threading server that verifies every signature with the
`standardwebhooks` library and answers 200 at once). Several born-digital jobs are submitted at once; every
event of theirs must arrive, verified, exactly once per webhook-id. Deliveries per second = deliveries /
(last arrival - first arrival); delay = arrival - the event's `time`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from bench.born_digital import make_document, stack_envs
from bench.common import fmt, log, run_and_record, run_stamp, table
from bench.concurrent_uploads import percentile
from bench.stacks import running_stack
from tests.support.webhook_receiver import WebhookReceiver

JOBS = 10
PAGES = 50
TIMEOUT_S = 300.0
ENV = {"PAGEMILL_EGRESS__ALLOW_NETWORKS": '["127.0.0.0/8"]', "PAGEMILL_WEBHOOKS__ROUTING_CACHE_S": "0"}


def _one_stack(env: Mapping[str, str], path: Path, jobs: int) -> dict[str, float]:
    with WebhookReceiver() as receiver, running_stack({**env, **ENV}, webhooks=True) as stack:
        made = stack.client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url("/hook"), "event_types": ["job.page_completed", *_OTHER_TYPES]},
        )
        made.raise_for_status()
        receiver.trust("/hook", made.json()["secret"])
        ids = [stack.submit(path, ocr_mode="auto") for _ in range(jobs)]
        finals = [stack.wait(job_id, TIMEOUT_S) for job_id in ids]
        # Every job's last event carries its sequence: the number of events the job wrote.
        expected = 0
        for job_id in ids:
            seen = stack.client.get(f"/api/v1/jobs/{job_id}/events", timeout=60).text
            expected += sum(1 for line in seen.splitlines() if line.startswith("id:"))
        deadline = time.monotonic() + TIMEOUT_S
        while len(receiver.received("/hook")) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        got = receiver.received("/hook")
    if any(final["state"] != "succeeded" for final in finals):
        raise RuntimeError(f"a job did not succeed: {finals}")
    ids_seen = [r.webhook_id for r in got]
    if len(got) != expected or len(set(ids_seen)) != expected or not all(r.verified for r in got):
        raise RuntimeError(f"{len(got)} deliveries ({len(set(ids_seen))} ids), {expected} events expected")
    arrivals = [r.at for r in got]
    delays = [
        (r.at - datetime.fromisoformat(r.json()["time"].replace("Z", "+00:00")).timestamp()) * 1000
        for r in got
    ]
    span = max(arrivals) - min(arrivals)
    return {
        "deliveries": float(len(got)),
        "span_s": span,
        "per_s": len(got) / span if span > 0 else float("nan"),
        "p50_ms": percentile(delays, 0.5),
        "p95_ms": percentile(delays, 0.95),
    }


_OTHER_TYPES = ["job.queued", "job.started", "job.progress", "job.succeeded", "job.failed", "job.cancelled"]


def run(jobs: int = JOBS, pages: int = PAGES, distributed: bool = True) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-wh-") as tmp:
        path = make_document(Path(tmp) / f"doc-{pages}.pdf", pages)
        for label, env in stack_envs("webhook_delivery", distributed, {}):
            figures = _one_stack(env, path, jobs)
            log(f"  {label}: {figures['deliveries']:.0f} deliveries, {figures['per_s']:.0f}/s")
            rows.append(
                [
                    label,
                    f"{figures['deliveries']:,.0f}",
                    fmt(figures["span_s"], 1),
                    fmt(figures["per_s"], 0),
                    fmt(figures["p50_ms"], 0),
                    fmt(figures["p95_ms"], 0),
                ]
            )
    header = ["stack", "deliveries", "seconds", "deliveries/s", "event to arrival p50 ms", "p95 ms"]
    return "\n".join(
        [
            "### Webhook deliveries (`python -m bench webhook_delivery`)",
            "",
            run_stamp(),
            f"{jobs} jobs of {pages} born-digital pages submitted at once; one endpoint subscribed to every "
            "job event type, page events included, on a local receiver that verifies each signature "
            "(standardwebhooks) and answers 200 at once. Webhooks worker: its own process, "
            "`webhooks.worker_threads` threads, beside a page worker of concurrency 2. Every event arrived "
            "exactly once (checked). One job's deliveries go one at a time, in order; jobs go in parallel.",
            "",
            table(header, rows),
        ]
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_delivery", description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--no-distributed", action="store_true", help="Skip the Postgres/Redis/S3 stack.")
    args = parser.parse_args(argv)
    return run_and_record("webhook_delivery", lambda: run(args.jobs, args.pages, not args.no_distributed))


if __name__ == "__main__":
    main()
