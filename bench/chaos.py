"""Chaos, long mode: hundreds of jobs in distributed mode while workers, Redis, Postgres and an API die.

``python -m bench chaos`` (or ``python -m bench.chaos --jobs 300 --seed 7``)

The same harness as ``tests/e2e/test_chaos.py`` (``tests/support/chaos*.py``), scaled up: its own Postgres
(stopped for 10 s), Redis (restarted empty), two API processes (one killed with SIGKILL and restarted; the
client fails over), workers of two pool processes on ingest,cpu (pool processes and whole workers killed
with SIGKILL and restarted, as a supervisor would), a GPU worker (4 threads) against the vLLM simulator
(killed too; ``--no-gpu`` leaves it out), moto S3. Jobs: born-digital PDFs of 3-12 pages and,
one in five, scanned PDFs read with ``ocr_mode=ocr``. Recorded: every action with the time until the jobs
it caught mid-read moved again (pages done up) and until a killed read was done again by another process,
the time until every job was final, the answers by status, and the pages read to the end twice. Targets
(issue 9): nothing lost, no 500, output equal to a clean run, a job moving again within 60 s of its
worker being killed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import log, run_and_record, run_stamp, verdict
from tests.support.chaos import CHAOS_SETTINGS, chaos_stack
from tests.support.chaos_report import problems, recovery, report
from tests.support.chaos_run import KILLS, ChaosPlan, ChaosResult, ChaosRun, make_documents
from tests.support.services import s3_server

RECOVERY_TARGET_S = 60.0


def plan_for(jobs: int, seed: int, gpu: bool) -> ChaosPlan:
    """Jobs submitted over ``jobs / 1.2`` seconds, about one action every 14 s in that window."""
    window = jobs / 1.2
    rounds = max(1, round(window / 100))
    actions = {
        "pool_kill": 3 * rounds,
        "worker_kill": 2 * rounds,
        "gpu_worker_kill": rounds if gpu else 0,
        "redis_restart": rounds,
        "postgres_stop": rounds,
        "api_kill": rounds,
    }
    return ChaosPlan(
        seed=seed,
        jobs=jobs,
        actions=actions,
        submit_window_s=window,
        drain_timeout_s=600.0,
    )


def _kill_recoveries(result: ChaosResult) -> list[float]:
    values: list[float] = []
    for action in result.actions:
        if action.kind in KILLS:
            values += recovery(result, action)[0]
    return values


def run(jobs: int, seed: int, workers: int, gpu: bool) -> str:
    """One chaos run; its results block."""
    plan = plan_for(jobs, seed, gpu)
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-chaos-") as tmp, s3_server() as s3:
        folder = Path(tmp)
        with chaos_stack(s3, folder / "logs", workers=workers, gpu=gpu) as stack:
            extra = " + a GPU worker and the vLLM simulator" if gpu else ""
            log(f"stack up: 2 APIs, {workers} workers x 2 pool processes{extra}; {jobs} jobs, seed {seed}")
            chaos = ChaosRun(stack, plan, make_documents(folder / "docs", gpu=gpu))
            try:
                result = chaos.run()
            finally:
                chaos.close()
    found = problems(result)
    kills = _kill_recoveries(result)
    worst = max(kills, default=float("nan"))
    settings = ", ".join(f"`{k.removeprefix('PAGEMILL_')}={v}`" for k, v in CHAOS_SETTINGS.items())
    lines = [
        "### Chaos (distributed: 2 APIs, workers killed, Redis restarted empty, Postgres stopped 10 s)",
        "",
        run_stamp(),
        f"Command: `python -m bench.chaos --jobs {jobs} --seed {seed} --workers {workers}"
        f"{'' if gpu else ' --no-gpu'}`. Settings: "
        f"{settings}; claim TTL and everything else at their defaults.",
        "",
        report(result),
        "",
        f"Nothing lost, no 500, outputs equal to the clean run: {verdict(not found)}"
        + (f" ({len(found)} problems; first: {found[0]})" if found else "")
        + ".",
        f"A job caught mid-read by a kill moving again within {RECOVERY_TARGET_S:.0f} s: "
        f"{verdict(worst <= RECOVERY_TARGET_S)} (worst {worst:.1f} s over {len(kills)} jobs).",
    ]
    for problem in found[:20]:
        log(f"problem: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """``python -m bench.chaos``."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--jobs", type=int, default=300, help="jobs submitted during the chaos (300)")
    parser.add_argument("--seed", type=int, default=20261129, help="seed of the action order and targets")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2 pool processes each)")
    parser.add_argument("--no-gpu", action="store_true", help="no GPU worker and vLLM simulator")
    args = parser.parse_args(argv)
    return run_and_record("chaos", lambda: run(args.jobs, args.seed, args.workers, not args.no_gpu))


if __name__ == "__main__":
    main()
