"""`pagemill submit`: documents (files, folders, patterns, URLs) sent to a running server, followed live
and their results downloaded; the same skips, progress and summary as `pagemill convert`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from rich.console import Console

from pagemill.bulk.api_client import ApiClient, ApiError, Stopped
from pagemill.bulk.display import BulkDisplay, FileOutcome, Stopwatch, Summary
from pagemill.bulk.inputs import Inputs, result_paths, results_exist, stems_in_folders
from pagemill.jobs.options import JobOptions, OutputFormat


@dataclass(frozen=True, slots=True)
class SubmitItem:
    """A document to submit: a local file or a URL the server fetches, and its result stem."""

    key: str
    source: str
    stem: Path
    path: Path | None = None

    @property
    def label(self) -> str:
        """A short name for its progress bar."""
        return self.path.name if self.path is not None else self.source


def plan_items(inputs: Inputs, urls: list[str], out: Path | None) -> list[SubmitItem]:
    """Files and URLs with their result stems: files as `pagemill convert` names them; URLs by their last
    path segment (``.../report.pdf`` -> ``report``), in ``out`` or the current folder."""
    folders: dict[Path, Path] = {}
    sources: dict[Path, tuple[str, Path | None]] = {}
    for item in inputs.files:
        folder = (out / item.under_out) if out is not None else item.path.parent
        folders[item.path] = folder.resolve()
        sources[item.path] = (str(item.path), item.path)
    for number, url in enumerate(urls):
        # A stand-in path that carries the URL's name into the naming rules, unique per URL.
        name = PurePosixPath(urlsplit(url).path).name or "document"
        stand_in = Path(f"/\0url{number}") / name
        folders[stand_in] = (out or Path.cwd()).resolve()
        sources[stand_in] = (url, None)
    stems = stems_in_folders(folders)
    return [
        SubmitItem(key=str(number), source=sources[key][0], stem=stems[key], path=sources[key][1])
        for number, key in enumerate(folders)
    ]


def submit_items(
    client: ApiClient,
    items: list[SubmitItem],
    *,
    options: JobOptions,
    password: str | None,
    parallel: int,
    force: bool,
    wait: bool,
    console: Console,
    ignored: int = 0,
) -> Summary:
    """Submit each item whose results are not all there (all with ``force``), ``parallel`` at a time;
    with ``wait``, follow each job to its end and download its results. The summary of the run."""
    clock = Stopwatch()
    outcomes: dict[str, FileOutcome] = {}
    todo: list[SubmitItem] = []
    for item in items:
        if not force and results_exist(item.stem, options.formats):
            outcomes[item.key] = FileOutcome(item.source, "skipped")
        else:
            outcomes[item.key] = FileOutcome(item.source, "failed", code="NOT_RUN")
            todo.append(item)
    stop = threading.Event()
    interrupted = False
    with BulkDisplay(len(items), console) as display:
        for key, outcome in outcomes.items():
            if outcome.state == "skipped":
                display.finished(key, outcome)

        def run(item: SubmitItem) -> None:
            if stop.is_set():
                return
            outcome = submit_one(client, item, options, password, wait, display, stop)
            outcomes[item.key] = outcome
            display.finished(item.key, outcome)

        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="submit") as pool:
            futures = [pool.submit(run, item) for item in todo]
            try:
                for future in futures:
                    future.result()
            except KeyboardInterrupt:
                # Documents not started are not sent; uploads in flight finish; jobs are no longer
                # followed (they go on on the server; a next run submits what has no results).
                interrupted = True
                stop.set()
    summary = Summary(list(outcomes.values()), clock.seconds, ignored=ignored)
    summary.interrupted = interrupted
    return summary


def submit_one(
    client: ApiClient,
    item: SubmitItem,
    options: JobOptions,
    password: str | None,
    wait: bool,
    display: BulkDisplay,
    stop: threading.Event,
) -> FileOutcome:
    """Submit one document, follow its job live, download its results: its outcome."""
    started = time.monotonic()
    # One key per document and run: a POST retried after a dropped connection never makes a second job.
    idempotency_key = f"submit-{uuid.uuid4()}"
    try:
        if item.path is not None:
            with item.path.open("rb") as body:
                job, _ = client.submit_file(
                    item.path.name, body, options, password=password, idempotency_key=idempotency_key
                )
        else:
            job, _ = client.submit_url(
                item.source, options, password=password, idempotency_key=idempotency_key
            )
    except ApiError as exc:
        return FileOutcome(item.source, "failed", code=exc.code, message=exc.message, seconds=_since(started))
    except OSError as exc:
        return FileOutcome(
            item.source, "failed", code="FILE_UNREADABLE", message=exc.strerror, seconds=_since(started)
        )
    job_id = str(job["id"])
    if not wait:
        return FileOutcome(item.source, "done", job_id=job_id, seconds=_since(started))
    display.started(item.key, item.label, None)

    def update(fields: dict[str, Any]) -> None:
        pages = fields.get("pages") or {}
        finished = int(pages.get("done") or 0) + int(pages.get("failed") or 0)
        display.advanced(item.key, finished, pages.get("total"))

    try:
        final, followed = client.follow(job_id, update, stop=stop)
        return _finish(client, item, final, options, followed, started)
    except Stopped:
        return FileOutcome(
            item.source, "failed", code="INTERRUPTED", message="Not followed to its end.", job_id=job_id
        )
    except ApiError as exc:
        return FileOutcome(
            item.source, "failed", code=exc.code, message=exc.message, job_id=job_id, seconds=_since(started)
        )


def _finish(
    client: ApiClient,
    item: SubmitItem,
    job: dict[str, Any],
    options: JobOptions,
    followed: Literal["events", "polling"],
    started: float,
) -> FileOutcome:
    """The outcome of an ended job: its results downloaded when it has any."""
    pages = job.get("pages") or {}
    done, failed = int(pages.get("done") or 0), int(pages.get("failed") or 0)
    common: dict[str, Any] = {"job_id": job["id"], "followed": followed, "pages_done": done}
    if job["state"] == "succeeded" or (job["state"] == "cancelled" and done):
        written = result_paths(item.stem, options.formats)
        for fmt, destination in zip(options.formats, written, strict=True):
            client.download(job["id"], fmt, destination)
        page_errors = _page_error_codes(written, options) if failed else {}
        return FileOutcome(
            item.source,
            "done",
            pages_failed=failed,
            page_errors=page_errors,
            outputs=[str(path) for path in written],
            seconds=_since(started),
            **common,
        )
    error = job.get("error") or {}
    return FileOutcome(
        item.source,
        "failed",
        pages_failed=failed,
        code=str(error.get("code") or job["state"].upper()),
        message=str(error.get("message") or f"The job ended {job['state']}."),
        seconds=_since(started),
        **common,
    )


def _page_error_codes(written: list[Path], options: JobOptions) -> dict[str, int]:
    """Failed pages per error code, from the JSON result when it was asked for (the job says how many
    pages failed, not why)."""
    if OutputFormat.JSON not in options.formats:
        return {}
    document = json.loads(written[options.formats.index(OutputFormat.JSON)].read_bytes())
    return dict(Counter(page["error"]["code"] for page in document["pages"] if page.get("error")))


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
