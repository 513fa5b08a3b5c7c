"""`pagemill backfill`: every document of a folder or bucket that passes the filters, submitted through the
API (so the tenant's quotas, rate limits and tier apply) at a bounded rate, resumable from a checkpoint.

A run plans (list, filter, leave out what the checkpoint has sent and, with ``--only-missing``, what has
results in ``--out``), submits, and with ``--wait`` (implied by ``--out``) follows the jobs to their end
and downloads their results to ``OUT/<key>.md`` (``.txt``, ``.json``): the source tree mirrored, whole file
names kept (``2024/a.pdf`` -> ``OUT/2024/a.pdf.md``) so that no two documents share a result.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from pagemill.bulk.api_client import FINAL_STATES, ApiClient, ApiError
from pagemill.bulk.checkpoint import Checkpoint, CheckpointEntry, idempotency_key
from pagemill.bulk.display import ProgressLine, Stopwatch
from pagemill.bulk.inputs import result_paths, results_exist
from pagemill.bulk.sources import Filters, Source, SourceError, SourceObject
from pagemill.jobs.options import JobOptions

# Answers that are about the caller, not the document: every other document would get them too.
_STOP_STATUSES = frozenset({0, 401, 403, 429})


@dataclass(slots=True)
class BackfillPlan:
    """What a run will send, and what it leaves out and why."""

    to_send: list[SourceObject] = field(default_factory=list)
    scanned: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    already_sent: int = 0
    have_results: int = 0
    beyond_limit: int = 0


@dataclass(slots=True)
class BackfillReport:
    """How a run went."""

    location: str
    plan: BackfillPlan
    dry_run: bool = False
    submitted: int = 0
    replayed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None
    interrupted: bool = False
    jobs: Counter[str] = field(default_factory=Counter)
    job_failures: Counter[str] = field(default_factory=Counter)
    downloaded: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """130 when interrupted; 1 when a document was refused, a job failed or the run stopped early."""
        if self.interrupted:
            return 130
        return 1 if self.refused or self.job_failures or self.stopped else 0

    def to_json(self) -> dict[str, Any]:
        """The report as ``--json`` prints it."""
        plan = self.plan
        return {
            "source": self.location,
            "dry_run": self.dry_run,
            "scanned": plan.scanned,
            "filtered": dict(plan.filtered),
            "already_sent": plan.already_sent,
            "have_results": plan.have_results,
            "beyond_limit": plan.beyond_limit,
            "to_send": len(plan.to_send),
            "would_send": [obj.key for obj in plan.to_send] if self.dry_run else None,
            "submitted": self.submitted,
            "replayed": self.replayed,
            "refused": dict(self.refused),
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "jobs": dict(self.jobs),
            "job_failures": dict(self.job_failures),
            "downloaded": self.downloaded,
            "seconds": round(self.seconds, 3),
        }


def plan_backfill(
    objects: Iterator[SourceObject],
    filters: Filters,
    checkpoint: Checkpoint,
    *,
    out: Path | None,
    only_missing: bool,
    options: JobOptions,
    limit: int | None,
) -> BackfillPlan:
    """Sort the source's documents into what to send and what is left out (filters, checkpoint, results
    in ``out``, beyond ``limit``)."""
    plan = BackfillPlan()
    for obj in objects:
        plan.scanned += 1
        reason = filters.rejects(obj)
        if reason is not None:
            plan.filtered[reason] += 1
        elif checkpoint.sent(obj) is not None:
            plan.already_sent += 1
        elif only_missing and out is not None and results_exist(out / obj.key, options.formats):
            plan.have_results += 1
        elif limit is not None and len(plan.to_send) >= limit:
            plan.beyond_limit += 1
        else:
            plan.to_send.append(obj)
    return plan


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts of ``burst``; shared by threads."""

    def __init__(self, rate: float | None, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a token; False when ``stop`` was set meanwhile."""
        if self.rate is None:
            return not stop.is_set()
        while not stop.is_set():
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return True
                wait = (1.0 - self._tokens) / self.rate
            stop.wait(wait)
        return False


def parse_rate(value: str) -> float:
    """``5``, ``5/s``, ``120/m``, ``3600/h`` -> submissions per second. ValueError otherwise."""
    number, _, unit = value.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip().lower())
    try:
        rate = float(number)
    except ValueError:
        rate = 0.0
    if per is None or not rate > 0:
        raise ValueError(f"{value!r} is not a rate (e.g. 5/s, 120/m)")
    return rate / per


@dataclass(slots=True)
class BackfillRun:
    """Everything a run works with."""

    source: Source
    checkpoint: Checkpoint
    client: ApiClient
    options: JobOptions
    password: str | None
    bucket: TokenBucket
    parallel: int
    console: Console
    stop: threading.Event
    out: Path | None = None
    wait: bool = False


def run_backfill(run: BackfillRun, report: BackfillReport) -> BackfillReport:
    """Submit the plan's documents, then (``wait``) follow every open job of the checkpoint to its end."""
    clock = Stopwatch()
    lock = threading.Lock()
    progress = ProgressLine(run.console, "submitted", len(report.plan.to_send))
    pending = iter(report.plan.to_send)

    def next_object() -> SourceObject | None:
        with lock:
            if report.stopped is not None or run.stop.is_set():
                return None
            return next(pending, None)

    def work() -> None:
        while (obj := next_object()) is not None:
            if not run.bucket.acquire(run.stop):
                return
            outcome = _submit(run, obj)
            with lock:
                if isinstance(outcome, ApiError):
                    if outcome.status in _STOP_STATUSES or not outcome.permanent:
                        report.stopped = report.stopped or f"{outcome.code}: {outcome.message}"
                        return
                    report.refused[outcome.code] += 1
                    run.console.print(
                        f"[red]{outcome.code}[/] {escape(obj.key)}: {escape(outcome.message)}",
                        highlight=False,
                        soft_wrap=True,
                    )
                else:
                    report.submitted += 1
                    report.replayed += int(outcome)
                progress.advance()

    with (
        progress,
        ThreadPoolExecutor(max_workers=max(1, run.parallel), thread_name_prefix="backfill") as pool,
    ):
        for future in [pool.submit(work) for _ in range(max(1, run.parallel))]:
            future.result()
    if (run.wait or run.out is not None) and report.stopped is None:
        _follow_jobs(run, report)
    report.interrupted = run.stop.is_set()
    report.seconds = clock.seconds
    return report


def _submit(run: BackfillRun, obj: SourceObject) -> ApiError | bool:
    """Submit ``obj`` and record it in the checkpoint: whether the server replayed an earlier job, or the
    error it answered (recorded as ``refused`` when it is about the document)."""
    try:
        with run.source.open(obj) as body:
            job, replayed = run.client.submit_file(
                obj.name,
                body,
                run.options,
                password=run.password,
                idempotency_key=idempotency_key(obj, run.options),
            )
    except ApiError as exc:
        if exc.permanent and exc.status not in _STOP_STATUSES:
            run.checkpoint.record(obj, job_id=None, state="refused", code=exc.code)
        return exc
    except SourceError as exc:  # gone or unreadable since it was listed: tried again by the next run
        return ApiError(404, "SOURCE_UNREADABLE", str(exc))
    run.checkpoint.record(obj, job_id=str(job["id"]), state="submitted")
    return replayed


# Jobs asked for in one GET /api/v1/jobs?id=… (the API's default api.page_size_max).
FOLLOW_BATCH = 100


def _follow_jobs(run: BackfillRun, report: BackfillReport) -> None:
    """Poll every open job of the checkpoint (this run's and earlier runs') until it ends, recording its
    end; with ``out``, download the results of every job that has some and whose files are missing."""
    formats = run.options.formats
    waiting = run.checkpoint.open_jobs()
    if run.out is not None:
        waiting += [
            entry
            for entry in run.checkpoint.entries.values()
            if entry.state in ("succeeded", "cancelled")
            and entry.job_id is not None
            and not results_exist(run.out / entry.key, formats)
        ]
    progress = ProgressLine(run.console, "jobs ended", len(waiting))
    batch = FOLLOW_BATCH
    with progress:
        while waiting and not run.stop.is_set():
            still: list[CheckpointEntry] = []
            # A hundred jobs a request (GET /api/v1/jobs?id=…), not one: thousands followed stay far
            # below the key's rate limit.
            start = 0
            while start < len(waiting):
                if run.stop.is_set():
                    return
                chunk = waiting[start : start + batch]
                try:
                    found = run.client.jobs([str(entry.job_id) for entry in chunk])
                except ApiError as exc:
                    smaller = exc.details.get("max") if exc.details.get("field") == "id" else None
                    if isinstance(smaller, int) and 0 < smaller < len(chunk):
                        batch = smaller  # a server with a smaller api.page_size_max
                        continue
                    report.stopped = f"{exc.code}: {exc.message}"
                    return
                start += len(chunk)
                for entry in chunk:
                    job = found.get(str(entry.job_id))
                    if job is None:  # deleted, or another tenant's: nothing to wait for
                        run.checkpoint.record(entry, job_id=entry.job_id, state="missing", code="NOT_FOUND")
                        progress.advance()
                    elif job["state"] not in FINAL_STATES:
                        still.append(entry)
                    else:
                        _job_ended(run, report, entry, job)
                        progress.advance()
            waiting = still
            if waiting:
                run.stop.wait(1.0)


def _job_ended(run: BackfillRun, report: BackfillReport, entry: CheckpointEntry, job: dict[str, Any]) -> None:
    code = (job.get("error") or {}).get("code")
    report.jobs[job["state"]] += 1
    if job["state"] == "failed":
        report.job_failures[str(code)] += 1
        run.console.print(
            f"[red]{code}[/] {escape(entry.key)}: job {job['id']} failed", highlight=False, soft_wrap=True
        )
    has_results = job["state"] == "succeeded" or (job["state"] == "cancelled" and job["pages"]["done"])
    if run.out is not None and has_results:
        stem = run.out / entry.key
        try:
            for fmt, destination in zip(
                run.options.formats, result_paths(stem, run.options.formats), strict=True
            ):
                run.client.download(str(job["id"]), fmt, destination)
            report.downloaded += 1
        except ApiError as exc:  # e.g. a format the job was not submitted with, or results expired
            run.console.print(
                f"[yellow]{exc.code}[/] {escape(entry.key)}: results of job {job['id']} not downloaded: "
                f"{escape(exc.message)}",
                highlight=False,
                soft_wrap=True,
            )
    if entry.state != job["state"]:
        run.checkpoint.record(entry, job_id=entry.job_id, state=job["state"], code=code)


def print_report(report: BackfillReport, console: Console) -> None:
    """The run's report: what was found, left out, sent, refused; how the jobs ended; why it stopped."""
    plan = report.plan
    left_out = [f"{n} {reason}" for reason, n in sorted(plan.filtered.items())]
    lines = [
        f"[bold]source[/] {escape(report.location)}: {plan.scanned} found, "
        f"{sum(plan.filtered.values())} filtered out"
        + (f" ({', '.join(left_out)})" if left_out else "")
        + f", {plan.already_sent} sent before (checkpoint)"
        + (f", {plan.have_results} with results in --out" if plan.have_results else "")
        + (f", {plan.beyond_limit} beyond --limit" if plan.beyond_limit else ""),
    ]
    if report.dry_run:
        lines.append(f"[bold]dry run[/]: {len(plan.to_send)} would be sent")
    else:
        rate = report.submitted / report.seconds if report.seconds > 0 else 0.0
        sent = f"[bold]sent[/] {report.submitted} of {len(plan.to_send)}"
        if report.replayed:
            sent += f" ({report.replayed} already jobs: replayed by the server)"
        if report.refused:
            sent += ", refused " + ", ".join(f"{code} x{n}" for code, n in sorted(report.refused.items()))
        lines.append(f"{sent}; {report.seconds:.1f} s, {rate:.1f}/s")
    if report.jobs:
        ended = ", ".join(f"{n} {state}" for state, n in sorted(report.jobs.items()))
        failures = ", ".join(f"{code} x{n}" for code, n in sorted(report.job_failures.items()))
        lines.append(f"[bold]jobs[/] {ended}" + (f" ({failures})" if failures else ""))
    if report.downloaded:
        lines.append(f"[bold]results[/] of {report.downloaded} jobs downloaded")
    if report.stopped:
        lines.append(f"[red]stopped[/]: {escape(report.stopped)}. Run the same command again to go on.")
    elif report.interrupted:
        lines.append("[yellow]interrupted[/]: run the same command again to go on.")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
