"""What a chaos run must show (:func:`problems`) and how it is summarised (:func:`report`).

Work done twice is judged from the read log: a page read to the end by two processes is *explained* when,
between the first read and the second, something could have kept the first from being committed (its
process or worker was killed, Postgres was down, Redis was restarted: Celery cancels running tasks when it
loses the broker); anything else is a second run of work that was already done — the duplicate a per-page
claim must prevent. Reads of the same page that overlapped in time are listed apart: two runs in parallel.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from tests.support.chaos_run import KILLS, Action, ChaosResult
from tests.support.chaos_watch import Read


@dataclass(frozen=True)
class Duplicate:
    """A page read to the end more than once."""

    job_id: str
    index: int
    first: Read
    second: Read
    explained_by: str | None
    overlapped: bool


def duplicates(result: ChaosResult) -> list[Duplicate]:
    """Every later complete read of a page already read to the end, with what explains it (if anything)."""
    complete: dict[tuple[str, int], list[Read]] = defaultdict(list)
    for read in result.reads:
        if read.outcome == "end":
            complete[(read.job_id, read.index)].append(read)
    found = []
    for (job_id, index), reads in complete.items():
        for first, second in itertools.pairwise(reads):
            explained = _explanation(result.actions, first, second)
            overlapped = first.ended is not None and second.started < first.ended
            found.append(Duplicate(job_id, index, first, second, explained, overlapped))
    return found


def _explanation(actions: list[Action], first: Read, second: Read) -> str | None:
    for action in actions:
        # The action must fall between the start of the first read and the start of the second (a
        # Postgres outage counts from its stop until it is back: a save during it fails).
        if action.back_at < first.started or action.at > second.started:
            continue
        if action.kind in KILLS and first.pid in action.killed_pids:
            return f"{action.kind} of pid {first.pid}"
        if action.kind in ("postgres_stop", "redis_restart"):
            return action.kind
    return None


def recovery(result: ChaosResult, action: Action) -> tuple[list[float], list[float]]:
    """Seconds from the action until each job it caught mid-read moved again (pages done up, or final), and
    (kills only) until each page whose read it killed was read to the end by another process."""
    jobs = []
    for job_id, done in action.done_before.items():
        moved = [
            at - action.at
            for at, state, pages in result.timelines.get(job_id, [])
            if at > action.at and (pages > done or state in ("succeeded", "failed", "cancelled"))
        ]
        if moved:
            jobs.append(moved[0])
    pages: list[float] = []
    if action.kind not in KILLS:
        return jobs, pages  # an outage cuts no read short: the page is not read again by someone else
    for cut in action.in_flight:
        again = [
            read.ended - action.at
            for read in result.reads
            if (read.job_id, read.index) == (cut.job_id, cut.index)
            and read.started >= cut.started
            and read.pid != cut.pid
            and read.ended is not None
            and read.outcome == "end"
        ]
        if again:
            pages.append(min(again))
    return jobs, pages


def problems(result: ChaosResult) -> list[str]:
    """Every broken promise: the suite asserts this list is empty."""
    found = list(result.violations)
    accepted = {s.job_id: s.document for s in result.submissions if s.job_id is not None}
    for submission in result.submissions:
        if submission.job_id is None:
            found.append(f"submission of {submission.document} never accepted: {submission.refused}")
    for job_id, document in accepted.items():
        job = result.final_jobs.get(job_id)
        if job is None or job.get("state") == "missing":
            found.append(f"accepted job {job_id} ({document}) not found via GET")
        elif job["state"] != "succeeded":
            found.append(f"job {job_id} ({document}) ended {job['state']}: {job.get('error')}")
        elif result.outputs.get(job_id) != result.clean[document]:
            found.append(f"job {job_id} ({document}): output differs from the clean run")
    for at, target, route, status, retry_after in result.answers:
        offset = at - result.started
        if status is None:
            windows = result.api_down.get(target, [])
            if not any(start - 1 <= at <= end + 1 for start, end in windows):
                found.append(f"connection error from {target} (not killed) on {route} at +{offset:.1f}s")
        elif status >= 500 and status != 503:
            found.append(f"{status} from {target} on {route} at +{offset:.1f}s")
        elif status == 503 and not retry_after:
            found.append(f"503 without Retry-After from {target} on {route} at +{offset:.1f}s")
    for dup in duplicates(result):
        if dup.explained_by is None:
            found.append(
                f"page {dup.index + 1} of job {dup.job_id} read to the end twice with nothing to explain it "
                f"(pids {dup.first.pid} and {dup.second.pid}, overlapped: {dup.overlapped})"
            )
    return found


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f} (n={len(values)})"


def report(result: ChaosResult) -> str:
    """A Markdown summary: actions and recovery, answers, work done twice, totals."""
    accepted = [s for s in result.submissions if s.job_id is not None]
    pages = sum(result.documents[s.document].pages for s in accepted)
    states = Counter(str(job.get("state")) for job in result.final_jobs.values())
    last_final = max(
        (points[-1][0] for points in result.timelines.values() if points), default=result.finished
    )
    chaos_s = result.chaos_ended - result.chaos_started
    lines = [
        f"Jobs accepted: {len(accepted)} ({pages} pages; {len(result.clean)} distinct documents, each also "
        f"run once before the chaos for its clean output). Final states: {dict(states)}.",
        f"Chaos phase: first submission to the end of the last action {chaos_s:.0f} s; every job final "
        f"{last_final - result.chaos_started:.0f} s after the first submission "
        f"({last_final - result.chaos_ended:+.0f} s from the end of the last action).",
        "",
        "| # | action | at (s) | target | back after (s) | reads in flight "
        "| job moving again (s, median / max) | killed read done again (s, median / max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, action in enumerate(result.actions, start=1):
        jobs, pages_again = recovery(result, action)
        lines.append(
            f"| {n} | {action.kind} | {action.at - result.chaos_started:.0f} | {action.target} | "
            f"{action.back_at - action.at:.1f} | {len(action.in_flight)} | {_fmt(jobs)} | "
            f"{_fmt(pages_again)} |"
        )
    counts = Counter(action.kind for action in result.actions)
    lines += ["", "Actions: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(counts.items())) + "."]
    statuses = Counter((route, status) for _at, _target, route, status, _ra in result.answers)
    lines.append(
        "Answers by route and status (None: connection error, allowed only from a killed API): "
        + ", ".join(f"{route} {status}: {n}" for (route, status), n in sorted(statuses.items(), key=str))
        + "."
    )
    dups = duplicates(result)
    reads = [read for read in result.reads if read.outcome == "end"]
    cut = [read for read in result.reads if read.ended is None]
    explained = Counter(dup.explained_by.split(" of ")[0] for dup in dups if dup.explained_by)
    lines.append(
        f"Page reads to the end: {len(reads)} for {len({(r.job_id, r.index) for r in reads})} pages; reads "
        f"cut short: {len(cut)}. Pages read to the end twice: {len(dups)} (explained: "
        f"{dict(explained) or 0}; unexplained: {sum(1 for d in dups if d.explained_by is None)}; "
        f"overlapping in time: {sum(1 for d in dups if d.overlapped)})."
    )
    if result.engine_requests is not None:
        gpu_pages = sum(
            result.documents[s.document].pages
            for s in accepted
            if result.documents[s.document].fields.get("engine") == "vllm"
        )
        lines.append(
            f"Model server (vLLM simulator) requests completed: {result.engine_requests} for {gpu_pages} "
            f"GPU pages ({result.engine_requests - gpu_pages} extra: pages whose answer was lost to a kill "
            "or an outage before it was saved, or read twice)."
        )
    return "\n".join(lines)
