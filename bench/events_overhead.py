"""What events cost the born-digital path: pages/s of a 3,000-page text PDF with events off and on (the
born-digital benchmark's pages, three times over: a 1-second job's start and poll jitter hid a few percent).

``python -m bench events_overhead``

Three embedded stacks that differ only in their event settings: `events.enabled=false` (nothing written to
the outbox), the default (a dozen events per job: queued, started, a throttled job.progress, succeeded), and
`events.page_events=always` (also one job.page_completed row per page, what a webhook subscribed to page
events costs). The three run side by side, each warmed up by one job, and rounds alternate between them in
a changing order. A stack can be a few percent faster or slower than its twin for the whole of its life,
so the benchmark runs in blocks, each with three fresh stacks started in a rotated order: a difference
that is a stack's and not a setting's spreads over the settings. Medians over every run and the ratio
on/off. Target (issue 11): pages/s with events on >= 0.95 of events off.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
from pathlib import Path

from bench.born_digital import JOB_TIMEOUT_S, make_document
from bench.common import fmt, log, median, run_and_record, run_stamp, table, verdict
from bench.stacks import BenchStack, running_stack, temp_data_dir

PAGES = 3000
BLOCKS = 4
ROUNDS = 2
TARGET_RATIO = 0.95
CONFIGS = {
    "events off (events.enabled=false)": {"PAGEMILL_EVENTS__ENABLED": "false"},
    "events on (default)": {},
    "events on + page events (events.page_events=always)": {"PAGEMILL_EVENTS__PAGE_EVENTS": "always"},
}


def _events_of(data_dir: Path, job_id: str) -> int:
    with sqlite3.connect(data_dir / "pagemill.sqlite3") as db:
        (count,) = db.execute("SELECT count(*) FROM events WHERE job_id = ?", (job_id,)).fetchone()
    return int(count)


def run(blocks: int = BLOCKS, rounds: int = ROUNDS, pages: int = PAGES) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    events: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-ev-") as tmp:
        path = make_document(Path(tmp) / f"born-digital-{pages}.pdf", pages)
        warmup = make_document(Path(tmp) / "warmup.pdf", 20)
        for block in range(blocks):
            names = list(CONFIGS)
            started = names[block % len(names) :] + names[: block % len(names)]
            with contextlib.ExitStack() as up:
                # The block's stacks run side by side (an idle stack costs the others the same in every
                # run), each warmed up once; runs alternate between them.
                stacks: dict[str, tuple[BenchStack, Path]] = {}
                for name in started:
                    data_dir = up.enter_context(temp_data_dir())
                    stack = up.enter_context(
                        running_stack({"PAGEMILL_DATA_DIR": str(data_dir), **CONFIGS[name]})
                    )
                    stack.run_job(warmup, JOB_TIMEOUT_S, ocr_mode="auto")
                    stacks[name] = (stack, data_dir)
                for round_ in range(rounds):
                    order = names if (block + round_) % 2 == 0 else list(reversed(names))
                    for name in order:
                        stack, data_dir = stacks[name]
                        job = stack.run_job(path, JOB_TIMEOUT_S, ocr_mode="auto")
                        rate = job.pages / job.seconds
                        rates[name].append(rate)
                        events[name] = _events_of(data_dir, job.job_id)
                        log(
                            f"  block {block + 1} round {round_ + 1}, {name}: {rate:.0f} pages/s, "
                            f"{events[name]} events"
                        )
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
            f"{blocks} blocks of three fresh stacks side by side (started in a rotated order, one "
            f"warm-up job each), {rounds} rounds a block alternating the order; POST to result fetched. "
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
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--pages", type=int, default=PAGES)
    args = parser.parse_args(argv)
    return run_and_record("events_overhead", lambda: run(args.blocks, args.rounds, args.pages))


if __name__ == "__main__":
    main()
