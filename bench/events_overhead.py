"""What events cost the born-digital path: pages/s of a 1,000-page text PDF with events off and on.

``python -m bench events_overhead``

Three embedded stacks that differ only in their event settings: `events.enabled=false` (nothing written to
the outbox), the default (a dozen events per job: queued, started, a throttled job.progress, succeeded), and
`events.page_events=always` (also one job.page_completed row per page, what a webhook subscribed to page
events costs). Rounds alternate the three (a fresh stack per run, one warm-up job each); medians and the
ratio on/off. Target (issue 11): pages/s with events on >= 0.95 of events off.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from bench.born_digital import JOB_TIMEOUT_S, make_document
from bench.common import (
    fmt,
    log,
    median,
    run_and_record,
    run_stamp,
    running_stack,
    table,
    temp_data_dir,
    verdict,
)

PAGES = 1000
ROUNDS = 3
TARGET_RATIO = 0.95
CONFIGS = {
    "events off (events.enabled=false)": {"PAGEMILL_EVENTS__ENABLED": "false"},
    "events on (default)": {},
    "events on + page events (events.page_events=always)": {"PAGEMILL_EVENTS__PAGE_EVENTS": "always"},
}


def _one_run(extra: dict[str, str], path: Path, warmup: Path) -> tuple[float, int]:
    """Pages/s of one job of ``path`` on a fresh embedded stack with ``extra``; events written."""
    with temp_data_dir() as data_dir, running_stack({"PAGEMILL_DATA_DIR": str(data_dir), **extra}) as stack:
        stack.run_job(warmup, JOB_TIMEOUT_S, ocr_mode="auto")
        job = stack.run_job(path, JOB_TIMEOUT_S, ocr_mode="auto")
        with sqlite3.connect(data_dir / "pagemill.sqlite3") as db:
            (count,) = db.execute("SELECT count(*) FROM events WHERE job_id = ?", (job.job_id,)).fetchone()
    return job.pages / job.seconds, int(count)


def run(rounds: int = ROUNDS, pages: int = PAGES) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    events: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-ev-") as tmp:
        path = make_document(Path(tmp) / f"born-digital-{pages}.pdf", pages)
        warmup = make_document(Path(tmp) / "warmup.pdf", 20)
        for round_ in range(rounds):
            order = list(CONFIGS) if round_ % 2 == 0 else list(reversed(CONFIGS))
            for name in order:
                rate, count = _one_run(CONFIGS[name], path, warmup)
                rates[name].append(rate)
                events[name] = count
                log(f"  round {round_ + 1}, {name}: {rate:.0f} pages/s, {count} events")
    off = median(rates[next(iter(CONFIGS))])
    rows = []
    for name, values in rates.items():
        ratio = median(values) / off
        rows.append(
            [
                name,
                fmt(median(values), 0),
                ", ".join(fmt(v, 0) for v in values),
                str(events[name]),
                fmt(ratio, 3),
                "-" if name.startswith("events off") else verdict(ratio >= TARGET_RATIO),
            ]
        )
    return "\n".join(
        [
            "### Events: cost on the born-digital path (`python -m bench events_overhead`)",
            "",
            run_stamp(),
            f"Document: {pages} generated text pages (as born_digital). Embedded stack, concurrency 2, "
            f"a fresh stack per run, {rounds} rounds alternating the order; POST to result fetched. "
            f"Target: events on >= {TARGET_RATIO} of events off.",
            "",
            table(
                ["settings", "pages/s (median)", "runs", "events of the job", "ratio to off", "target"], rows
            ),
        ]
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.events_overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--pages", type=int, default=PAGES)
    args = parser.parse_args(argv)
    return run_and_record("events_overhead", lambda: run(args.rounds, args.pages))


if __name__ == "__main__":
    main()
