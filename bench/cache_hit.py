"""Result cache: a resubmitted 1,000-page born-digital PDF against its first job, same stack, same run.

``python -m bench cache_hit`` (``python -m bench.cache_hit --no-distributed`` skips the Postgres/Redis/S3
stack; ``--pages`` shrinks the document for a quick check).

Each stack (embedded, then distributed) starts with the cache on. The first job of the document reads
every page; then the same file is submitted again ``--resubmits`` times with the same options, and each
answer must name an earlier job of it in ``cached_from``. Both are timed the same way, from the POST to the
markdown result fetched. Target: a resubmission takes < 5% of the first job's time (median of the
resubmissions).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.born_digital import make_document, stack_envs
from bench.common import fmt, log, median, run_and_record, run_stamp, table, verdict
from bench.jobs import JobRun
from bench.stacks import running_stack

PAGES = 1000
RESUBMITS = 3
TARGET_RATIO = 0.05
JOB_TIMEOUT_S = 300.0


def time_stack(env: dict[str, str], path: Path, warmup: Path, resubmits: int) -> tuple[JobRun, list[JobRun]]:
    """The first (read) job of ``path`` and its cached resubmissions, on a fresh stack with the cache on."""
    with running_stack({**env, "PAGEMILL_CACHE__ENABLED": "true"}, concurrency=2) as stack:
        stack.run_job(warmup, JOB_TIMEOUT_S)
        first = stack.run_job(path, JOB_TIMEOUT_S)
        if first.job.get("cached_from") is not None:
            raise RuntimeError(f"the first job was answered from the cache: {first.job}")
        log(f"  first job: {first.pages} pages in {first.seconds:.2f}s")
        cached: list[JobRun] = []
        for run in range(resubmits):
            job = stack.run_job(path, JOB_TIMEOUT_S)
            # Copied from the newest earlier job of the document: the first, or a resubmission before.
            if job.job.get("cached_from") not in {first.job_id, *(earlier.job_id for earlier in cached)}:
                raise RuntimeError(f"resubmission {run + 1} was not a cache hit: {job.job}")
            if job.result_bytes != first.result_bytes:
                raise RuntimeError("the cached result differs from the first job's")
            log(
                f"  resubmission {run + 1}: {job.seconds * 1000:.0f} ms ({job.seconds / first.seconds:.2%}), "
                f"POST {job.submit_seconds * 1000:.0f} ms"
            )
            cached.append(job)
    return first, cached


def run(distributed: bool = True, pages: int = PAGES, resubmits: int = RESUBMITS) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-cache-") as tmp:
        workdir = Path(tmp)
        path = make_document(workdir / f"cache-{pages}.pdf", pages)
        warmup = make_document(workdir / "warmup.pdf", 5)
        size_mb = path.stat().st_size / 1e6
        log(f"cache_hit: {pages} pages, {size_mb:.1f} MB")
        for label, env in stack_envs("cache_hit", distributed, {}):
            first, cached = time_stack(env, path, warmup, resubmits)
            cached_s = median([job.seconds for job in cached])
            ratio = cached_s / first.seconds
            rows.append(
                [
                    label,
                    fmt(first.seconds, 2),
                    fmt(cached_s * 1000, 0),
                    ", ".join(fmt(job.seconds * 1000, 0) for job in cached),
                    f"{ratio:.2%}",
                    verdict(ratio < TARGET_RATIO),
                ]
            )
    lines = [
        "### Result cache hit (`python -m bench cache_hit`)",
        "",
        run_stamp(),
        f"Document: {pages} born-digital pages (as in born_digital), {size_mb:.1f} MB. Worker concurrency 2, "
        "cache on. Each time runs from the POST to the markdown result fetched: the first job reads every "
        f"page; then {resubmits} resubmissions of the same file and options, each answered from the cache "
        "(`cached_from` is an earlier job of it; result bytes equal). Target: resubmission < "
        f"{TARGET_RATIO:.0%} of the first job's time.",
        "",
        table(
            ["stack", "first job s", "resubmission ms (median)", "runs, ms", "ratio", "target"],
            rows,
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.cache_hit", description=__doc__)
    parser.add_argument("--no-distributed", action="store_true", help="Skip the Postgres/Redis/S3 stack.")
    parser.add_argument("--pages", type=int, default=PAGES)
    parser.add_argument("--resubmits", type=int, default=RESUBMITS)
    args = parser.parse_args(argv)
    return run_and_record(
        "cache_hit",
        lambda: run(distributed=not args.no_distributed, pages=args.pages, resubmits=args.resubmits),
    )


if __name__ == "__main__":
    main()
