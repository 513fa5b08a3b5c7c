"""How good is a job's `eta_s`? Predicted end times against the real ones, for jobs queued behind others.

``python -m bench eta_accuracy`` (``--jobs``, ``--pages``)

An embedded stack (worker concurrency 2). Several OCR jobs (born-digital text PDFs read with
`ocr_mode=ocr`, engine tesseract: each page costs a real OCR read) are submitted at once, so the later ones
wait behind the earlier ones. Every job's status is polled once a second; each answer with an `eta_s`
predicts the job's end at (time of the answer + eta_s). When the jobs have ended, each prediction is
compared with when its job really ended (`finished_at`): the error in seconds and relative to the time that
was left. Reported by the job's place in the queue and over all predictions: median and p90 of the
absolute relative error, and how early or late the median prediction was.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.born_digital import page_texts
from bench.common import fmt, log, median, run_and_record, run_stamp, table
from bench.concurrent_uploads import percentile
from bench.stacks import running_stack, temp_data_dir
from tests.support.documents import make_text_pdf

JOBS = 4
PAGES = 8
JOB_TIMEOUT_S = 600.0


def run(jobs: int = JOBS, pages: int = PAGES) -> str:
    """Run the benchmark; return the Markdown block for docs/benchmarks.md."""
    samples: dict[str, list[tuple[float, float]]] = {}  # job id -> (answered at, eta_s)
    ended: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-eta-") as tmp, temp_data_dir() as data_dir:
        path = make_text_pdf(Path(tmp) / "doc.pdf", page_texts(pages, chars=600))
        warmup = make_text_pdf(Path(tmp) / "warmup.pdf", page_texts(2, chars=600))
        with running_stack({"PAGEMILL_DATA_DIR": str(data_dir)}) as stack:
            fields = {"ocr_mode": "ocr", "engine": "tesseract"}
            # The warm-up also gives the pool an observed rate (the estimate needs pages read lately).
            stack.run_job(warmup, JOB_TIMEOUT_S, **fields)
            ids = [stack.submit(path, **fields) for _ in range(jobs)]
            log(f"eta_accuracy: {jobs} jobs of {pages} OCR pages submitted")
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while len(ended) < len(ids) and time.monotonic() < deadline:
                for job_id in ids:
                    if job_id in ended:
                        continue
                    job = stack.client.get(f"/api/v1/jobs/{job_id}").json()
                    if job["finished_at"] is not None:
                        ended[job_id] = datetime.fromisoformat(job["finished_at"]).timestamp()
                    elif job.get("eta_s") is not None:
                        samples.setdefault(job_id, []).append((time.time(), float(job["eta_s"])))
                time.sleep(1.0)
    if len(ended) < len(ids):
        raise RuntimeError(f"only {len(ended)} of {len(ids)} jobs ended in {JOB_TIMEOUT_S:.0f}s")
    rows = []
    every_rel: list[float] = []
    every_err: list[float] = []
    for place, job_id in enumerate(ids, start=1):
        rel, err = [], []
        for answered, eta in samples.get(job_id, []):
            left = ended[job_id] - answered
            if left <= 1.0:
                continue  # the last second: any relative error is noise
            err.append(answered + eta - ended[job_id])
            rel.append(abs(answered + eta - ended[job_id]) / left)
        every_rel += rel
        every_err += err
        log(f"  job {place}: {len(rel)} predictions, median |error| {median(rel) * 100 if rel else 0:.0f}%")
        rows.append(
            [
                str(place),
                str(len(rel)),
                fmt(median(rel) * 100, 0) if rel else "-",
                fmt(percentile(rel, 0.9) * 100, 0) if rel else "-",
                fmt(median(err), 1) if err else "-",
            ]
        )
    rows.append(
        [
            "all",
            str(len(every_rel)),
            fmt(median(every_rel) * 100, 0) if every_rel else "-",
            fmt(percentile(every_rel, 0.9) * 100, 0) if every_rel else "-",
            fmt(median(every_err), 1) if every_err else "-",
        ]
    )
    header = ["job (queue place)", "predictions", "median abs error %", "p90 abs error %", "median error s"]
    return "\n".join(
        [
            "### ETA accuracy (`python -m bench eta_accuracy`)",
            "",
            run_stamp(),
            f"{jobs} jobs of {pages} pages each submitted at once, OCR (tesseract) on an embedded stack with "
            "worker concurrency 2, each polled once a second. Error = (answer time + eta_s) - the job's "
            "finished_at, relative to the time that was left; predictions in a job's last second left out. "
            "Negative: the estimate was early (too optimistic).",
            "",
            table(header, rows),
        ]
    )


def main(argv: list[str] | None = None) -> str:
    """Command line: run, print, record."""
    parser = argparse.ArgumentParser(prog="python -m bench.eta_accuracy", description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--pages", type=int, default=PAGES)
    args = parser.parse_args(argv)
    return run_and_record("eta_accuracy", lambda: run(args.jobs, args.pages))


if __name__ == "__main__":
    main()
