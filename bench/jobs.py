"""Jobs as a benchmark's client sees them: submitting a document, polling until it succeeded, timing phases.

The stacks in :mod:`bench.stacks` submit and poll with these, so every service timing here is taken the
same way: a multipart POST, then a status poll every :data:`STATUS_POLL_S`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import FINAL_STATES

STATUS_POLL_S = 0.05
"""The client's status poll, as in every service timing here (docs/benchmarks.md, Method)."""


def post_document(
    client: httpx.Client, path: Path, fields: Mapping[str, str], content_type: str | None = None
) -> str:
    """POST ``path`` with the form ``fields`` (and ``content_type``, else the one httpx guesses); its job id
    (raises unless the answer is 202)."""
    with path.open("rb") as handle:
        upload = (path.name, handle) if content_type is None else (path.name, handle, content_type)
        response = client.post("/api/v1/documents", files={"file": upload}, data=fields)
    if response.status_code != 202:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["id"])


def wait_until_succeeded(
    client: httpx.Client,
    job_id: str,
    timeout: float,
    logs: Callable[[], str],
    *,
    poll_s: float = STATUS_POLL_S,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll a job every ``poll_s`` until it is final; return it. Raises with ``logs()`` when it ended other
    than succeeded or is not final after ``timeout`` seconds. ``on_status`` sees every status read, as soon
    as it is read (for timing what a poll first shows)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
        if on_status is not None:
            on_status(job)
        if job["state"] in FINAL_STATES:
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job_id} ended {job['state']}: {job}\n{logs()}")
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s\n{logs()}")
        time.sleep(poll_s)


@dataclass
class JobRun:
    """One timed job: POST to result fetched."""

    job_id: str
    job: dict[str, Any]
    seconds: float
    submit_seconds: float
    result_bytes: int

    @property
    def pages(self) -> int:
        """Pages done."""
        return int(self.job["pages"]["done"])


@dataclass
class TimedJob:
    """A recording's job timed from the client: seconds since the POST started."""

    job_id: str
    upload_s: float
    """The POST answered (upload, stored, job created)."""
    planned_s: float
    """The job's page count first seen (by the polls): the recording cut and its pieces stored."""
    succeeded_s: float
    result_s: float
    """The markdown result fetched (``nan`` when not fetched)."""
    pages: list[dict[str, Any]]
    """The JSON result's pages (fetched after the timing)."""
    done_when_planned: int = 0
    """Pieces already transcribed when the page count was first seen (they start as they are cut)."""


def timed_job(
    client: httpx.Client,
    path: Path,
    *,
    timeout: float,
    fetch: bool,
    logs: Callable[[], str],
    poll_s: float = STATUS_POLL_S,
    **fields: str,
) -> TimedJob:
    """POST ``path``, poll every ``poll_s`` until it succeeded (raises otherwise, or after ``timeout``
    seconds), fetch the markdown result when ``fetch``; then its JSON pages."""
    started = time.perf_counter()
    job_id = post_document(client, path, fields)
    upload_s = time.perf_counter() - started
    planned = float("nan")
    done_when_planned = 0

    def note_planned(job: dict[str, Any]) -> None:
        nonlocal planned, done_when_planned
        if planned != planned and job.get("page_count"):
            planned = time.perf_counter() - started
            done_when_planned = int((job.get("pages") or {}).get("done") or 0)

    wait_until_succeeded(client, job_id, timeout, logs, poll_s=poll_s, on_status=note_planned)
    succeeded = time.perf_counter() - started
    if fetch:
        client.get(f"/api/v1/jobs/{job_id}/result", params={"format": "markdown"}).raise_for_status()
    result_s = time.perf_counter() - started if fetch else float("nan")
    response = client.get(f"/api/v1/jobs/{job_id}/result", params={"format": "json"}).raise_for_status()
    pages = response.json()["pages"]
    return TimedJob(job_id, upload_s, planned, succeeded, result_s, pages, done_when_planned)
