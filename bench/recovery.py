"""Recovery time: how soon a job moves again after its worker is killed (``python -m bench recovery``).

Measured as a user would see it: a 12-page scanned PDF with ``ocr_mode=ocr`` (Tesseract, worker concurrency
2), and once 3 pages are done,

* ``pool``: both pool processes are killed with SIGKILL (the worker's main process stays and forks new
  ones, as ``pagemill up`` would);
* ``worker``: the whole worker (main process and pool) is killed with SIGKILL and a new one started at once
  (what a supervisor, Docker's restart policy or Kubernetes does).

"Moving again" is the first page finished after the kill (``pages.done`` grows); the job's end is compared
with a clean run of the same document on the same stack. Embedded (SQLite, SQLite broker) and distributed
(Postgres, Redis, moto S3). Target (issue 9): moving again within 60 s in both modes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

from bench.born_digital import page_texts, stack_envs
from bench.common import fmt, log, median, run_and_record, run_stamp, table
from bench.stacks import BenchStack, running_stack
from tests.support.documents import make_scanned_pdf
from tests.support.services import pagemill_worker

PAGES = 12
KILL_AFTER = 3
ROUNDS = 2
JOB_TIMEOUT_S = 600
TARGET_S = 60.0
SCENARIOS = (("pool", "both pool processes SIGKILLed"), ("worker", "whole worker SIGKILLed, restarted"))


def _done(stack: BenchStack, job_id: str) -> tuple[str, int]:
    job = stack.client.get(f"/api/v1/jobs/{job_id}").json()
    return str(job["state"]), int(job["pages"]["done"])


def _wait_done(stack: BenchStack, job_id: str, at_least: int, timeout: float) -> float:
    """Poll until ``at_least`` pages are done; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, done = _done(stack, job_id)
        if done >= at_least or state in {"succeeded", "failed", "cancelled"}:
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id}: fewer than {at_least} pages after {timeout:.0f}s")


def _one_round(stack: BenchStack, path: Path, scenario: str) -> dict[str, float]:
    started = time.monotonic()
    job_id = stack.submit(path, ocr_mode="ocr", engine="tesseract")
    _wait_done(stack, job_id, KILL_AFTER, JOB_TIMEOUT_S)
    _, before = _done(stack, job_id)
    with contextlib.ExitStack() as replacement:
        if scenario == "pool":
            pool = stack.worker.child_pids(recursive=False)
            for pid in pool:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            log(f"  {scenario}: killed pool processes {pool} with {before} pages done")
        else:
            stack.worker.send_signal(signal.SIGKILL, group=True)
            killed = time.monotonic()
            log(f"  {scenario}: killed the whole worker with {before} pages done; starting another")
            replacement.enter_context(
                pagemill_worker(stack.env, queues="ingest,cpu,gpu", concurrency=2, timeout=90)
            )
        moving = _wait_done(stack, job_id, before + 1, JOB_TIMEOUT_S)
        job = stack.wait(job_id, JOB_TIMEOUT_S, poll=0.2)
        ended = time.monotonic()
    if job["state"] != "succeeded" or job["pages"]["done"] != PAGES:
        raise RuntimeError(f"job {job_id} after the kill: {job}")
    return {"moving_s": moving - killed, "job_s": ended - started}


def _mode(env: dict[str, str], path: Path, warmup: Path, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {
        name: [] for name in ("clean", "pool_moving", "pool_job", "worker_moving", "worker_job")
    }
    for scenario in ("pool", "worker"):
        for number in range(rounds):
            # A fresh stack per round: the whole-worker kill leaves the stack's own worker dead.
            with running_stack(env) as stack:
                stack.run_job(warmup, JOB_TIMEOUT_S, ocr_mode="ocr", engine="tesseract")
                if scenario == "pool" and number == 0:
                    clean = stack.run_job(path, JOB_TIMEOUT_S, ocr_mode="ocr", engine="tesseract")
                    results["clean"].append(clean.seconds)
                    log(f"  clean run: {clean.seconds:.1f}s")
                measured = _one_round(stack, path, scenario)
                results[f"{scenario}_moving"].append(measured["moving_s"])
                results[f"{scenario}_job"].append(measured["job_s"])
                log(
                    f"  {scenario} round {number + 1}: moving again after {measured['moving_s']:.1f}s, "
                    f"job {measured['job_s']:.1f}s"
                )
    return results


def run(rounds: int = ROUNDS, distributed: bool = True) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-recovery-") as tmp:
        path = make_scanned_pdf(Path(tmp) / "scan.pdf", page_texts(PAGES, chars=900, seed=5))
        warmup = make_scanned_pdf(Path(tmp) / "warmup.pdf", page_texts(1, chars=200, seed=3))
        modes: dict[str, dict[str, list[float]]] = {}
        env_extra = {"PAGEMILL_WORKER__SWEEP_INTERVAL_S": "10"}
        for label, env in stack_envs("recovery", distributed, env_extra):
            modes[label] = _mode(env, path, warmup, rounds)
    rows = []
    for name, r in modes.items():
        for scenario, label in SCENARIOS:
            moving = r[f"{scenario}_moving"]
            rows.append(
                [
                    name,
                    label,
                    fmt(median(moving)),
                    ", ".join(fmt(v) for v in moving),
                    fmt(median(r[f"{scenario}_job"])),
                    fmt(median(r["clean"])),
                    "met" if max(moving) <= TARGET_S else "**MISSED**",
                ]
            )
    return "\n".join(
        [
            f"### Recovery after a killed worker (`python -m bench recovery`)\n\n{run_stamp()}\n",
            f"Document: {PAGES} scanned pages (300 DPI), `ocr_mode=ocr`, Tesseract, worker concurrency 2, "
            "`worker.sweep_interval_s` 10 and `worker.claim_ttl_s` 30 (the defaults). The kill comes "
            f"once {KILL_AFTER} pages are done; a fresh stack per round, {rounds} rounds per scenario. "
            "Moving again: the first page finished after the kill. Job: POST to succeeded, kill included; "
            "clean: the same document without a kill on the same stack.\n",
            table(
                [
                    "stack",
                    "scenario",
                    "moving again after, s (median)",
                    "rounds, s",
                    "job s (median)",
                    "clean job s",
                    "<= 60 s",
                ],
                rows,
            ),
        ]
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-distributed", action="store_true")
    args = parser.parse_args(argv)
    return run_and_record("recovery", lambda: run(rounds=args.rounds, distributed=not args.no_distributed))


if __name__ == "__main__":
    main()
