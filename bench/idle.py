"""What an idle Pagemill costs: CPU of the worker and the API while nothing is submitted.

``python -m bench idle``

An embedded stack (SQLite, the embedded broker) and then a distributed one (Postgres, Redis, moto S3), each
on default settings (worker concurrency 2; the sweeper every ``worker.sweep_interval_s``, 10 s): after one
small job (so first connections and imports are behind), the CPU of the worker's process tree and of the
API's is read from ``/proc`` over ``--seconds`` of quiet, ``--rounds`` times. A job's time on the idle
stack (a one-page text PDF, POST to result fetched) is measured after each round: what an idle worker's
polling leaves of a job's first hop.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import fmt, log, median, run_and_record, table, tree_cpu_seconds
from bench.report import results_block
from bench.stacks import BenchStack, distributed_env_stack, running_stack, temp_data_dir
from tests.support.documents import make_text_pdf


@dataclass(frozen=True)
class IdleRound:
    """One round: the share of a core used by the worker tree and the API tree, and a job's time after."""

    worker_cores: float
    api_cores: float
    job_s: float


@contextlib.contextmanager
def _stack(mode: str) -> Iterator[BenchStack]:
    if mode == "embedded":
        with temp_data_dir() as data_dir, running_stack({"PAGEMILL_DATA_DIR": str(data_dir)}) as stack:
            yield stack
    else:
        services, env = distributed_env_stack()
        with services, running_stack(env) as stack:
            yield stack


def measure(mode: str, rounds: int, seconds: float, pdf: Path) -> list[IdleRound]:
    """``rounds`` idle intervals of ``seconds`` on a fresh stack of ``mode``, each followed by a job."""
    results = []
    with _stack(mode) as stack:
        stack.run_job(pdf, timeout=120)  # warm-up
        time.sleep(2)  # the job's own after-work (finalize, events) is not idle time
        for number in range(1, rounds + 1):
            worker_before, api_before = tree_cpu_seconds(stack.worker.pid), tree_cpu_seconds(stack.api.pid)
            time.sleep(seconds)
            worker_cores = (tree_cpu_seconds(stack.worker.pid) - worker_before) / seconds
            api_cores = (tree_cpu_seconds(stack.api.pid) - api_before) / seconds
            job_s = stack.run_job(pdf, timeout=120).seconds
            log(f"  {mode} {number}: worker {worker_cores:.3f} core, API {api_cores:.3f}; job {job_s:.2f}s")
            results.append(IdleRound(worker_cores, api_cores, job_s))
            time.sleep(2)
    return results


def run(rounds: int, seconds: float) -> str:
    """Measure both modes; the results block."""
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as folder:
        pdf = make_text_pdf(Path(folder) / "one.pdf", ["A single page of text for an idle stack."])
        measured = {mode: measure(mode, rounds, seconds, pdf) for mode in ("embedded", "distributed")}
    rows = []
    for mode, results in measured.items():
        rows.append(
            [
                mode,
                f"{fmt(100 * median([r.worker_cores for r in results]), 1)}%",
                f"{fmt(100 * median([r.api_cores for r in results]), 1)}%",
                fmt(median([r.job_s for r in results]), 2),
                ", ".join(f"{100 * r.worker_cores:.1f}%" for r in results),
            ]
        )
    return results_block(
        "### An idle stack's CPU (`python -m bench idle`)",
        f"Default settings (worker concurrency 2, a sweep every 10 s); {rounds} rounds of {seconds:g} s with "
        "nothing submitted, after one warm-up job; CPU (user + system) of the worker's and the API's process "
        "trees from /proc, as a share of one core; after each round a one-page text PDF, POST to result "
        "fetched (polling every 50 ms). Medians.",
        table(["stack", "worker (of a core)", "API", "one-page job after idling (s)", "worker rounds"], rows),
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m bench.idle [--rounds N] [--seconds S]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    run_and_record("idle", lambda: run(args.rounds, args.seconds))


if __name__ == "__main__":
    main()
