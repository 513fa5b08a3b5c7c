"""Live progress over HTTP, embedded and distributed: a running job's pages as they finish
(GET /jobs/{id}/pages?after=N), its result so far (result?partial=true), the full result unchanged, and
queue_position / eta_s for jobs waiting behind another."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.support import documents

pytestmark = pytest.mark.e2e

# Scanned pages: every one goes through OCR (Tesseract, the faster engine: about a second each here), so a
# job of this many pages runs long enough to be looked at while it runs.
LONG = 6
FIRST = 20


def scan(docs: Path, name: str, pages: int) -> Path:
    texts = [f"Page number {n} of {name}" for n in range(1, pages + 1)]
    return documents.make_scanned_pdf(docs / name, texts)


def remaining(job: dict[str, Any]) -> int:
    pages = job["pages"]
    return int(pages["total"] - pages["done"] - pages["failed"])


def wait_for(stack: Stack, what: str, predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{stack.worker.log_tail(40)}"
        time.sleep(0.05)


def test_pages_as_they_finish_and_the_result_so_far(stack: Stack, docs: Path) -> None:
    job_id = stack.submit_ok(scan(docs, "long", LONG), engine="tesseract")
    seen: list[int] = []
    seen_while_running: list[int] = []
    after = 0
    partial_checked = False
    deadline = time.monotonic() + 180
    while True:
        state_before = stack.job(job_id)["state"]
        response = stack.client.get(f"/api/v1/jobs/{job_id}/pages", params={"after": after, "limit": 5})
        assert response.status_code == 200, response.text
        listing = response.json()
        numbers = [page["page"] for page in listing["items"]]
        for page in listing["items"]:
            assert page["state"] == "done", page
            assert f"page number {page['page']} of long" in page["text"].lower(), page
            assert set(page) >= {"markdown", "lines", "engine", "attempts"}
        seen += numbers
        if state_before == "running":
            seen_while_running += numbers
        assert listing["next_after"] == (numbers[-1] if numbers else after)
        after = listing["next_after"]

        unread = LONG - listing["pages"]["done"] - listing["pages"]["failed"]
        if not partial_checked and seen and listing["state"] == "running" and unread >= 2:
            # The result so far, while the job runs: the pages finished, in order, said to be partial.
            partial = stack.client.get(
                f"/api/v1/jobs/{job_id}/result", params={"format": "markdown", "partial": "true"}
            )
            assert partial.status_code == 200, partial.text
            assert partial.headers["pagemill-partial"] == "true"
            assert partial.headers["pagemill-pages-total"] == str(LONG)
            done = int(partial.headers["pagemill-pages-done"])
            assert 1 <= done < LONG
            markers = [int(n) for n in re.findall(r"<!-- page (\d+) -->", partial.text)]
            assert len(markers) == done and markers == sorted(markers) and 1 in markers
            assert "page number 1 of long" in partial.text.lower()
            # Without partial the result of a running job is still a conflict.
            assert stack.result(job_id).status_code == 409
            partial_checked = True

        if not listing["has_more"]:
            break
        assert time.monotonic() < deadline, stack.worker.log_tail(40)
        time.sleep(0.1)

    assert seen == list(range(1, LONG + 1))  # every page once, in order
    assert seen_while_running, "no page was listed while the job was running"
    assert partial_checked, "the job was never seen running with a finished page"
    assert stack.job(job_id)["state"] == "succeeded"

    full = stack.result(job_id)
    assert full.status_code == 200 and "pagemill-partial" not in full.headers
    assert [int(n) for n in re.findall(r"<!-- page (\d+) -->", full.text)] == list(range(1, LONG + 1))
    final = stack.client.get(
        f"/api/v1/jobs/{job_id}/result", params={"format": "markdown", "partial": "true"}
    )
    assert final.status_code == 200 and final.headers["pagemill-partial"] == "false"
    assert final.text == full.text


def test_queue_position_and_eta_of_a_job_behind_another(stack: Stack, docs: Path) -> None:
    first = stack.submit_ok(scan(docs, "first", FIRST))
    second = stack.submit_ok(scan(docs, "second", 3))
    looked: dict[str, dict[str, Any]] = {}
    first_page_read_at: list[float] = []

    def behind() -> bool:
        # The second job is planned and waits while the first one, older, of the same tenant, still has
        # pages nobody has started on (2 workers read 2 at most), and read its first page long enough ago
        # that the API's counts of the queue (reused for up to a second) include it: the pool has a rate.
        ahead = stack.job(first)
        waiting = stack.job(second)
        looked.update(first=ahead, second=waiting)
        if ahead["pages"]["done"] >= 1 and not first_page_read_at:
            first_page_read_at.append(time.monotonic())
        settled = bool(first_page_read_at) and time.monotonic() - first_page_read_at[0] > 1.5
        planned = waiting["pages"]["total"] is not None and waiting["state"] in ("queued", "running")
        return planned and settled and remaining(ahead) >= 6

    wait_for(stack, "the second job planned behind the first", behind)
    ahead, waiting = looked["first"], looked["second"]
    # Between the two reads the first job lost a page or two to the workers: at least 6 - 2 in flight - 1;
    # at most its pages not read when its first page was.
    assert 3 <= waiting["queue_position"] <= FIRST - 1, (ahead, waiting)
    assert waiting["eta_s"] is not None and waiting["eta_s"] > 0, waiting
    # The first job waits for nobody (the second is newer) and ends sooner.
    assert ahead["queue_position"] == 0 and ahead["eta_s"] is not None and ahead["eta_s"] > 0, ahead

    # Listings leave the estimate out.
    listed = stack.client.get("/api/v1/jobs", params={"limit": 5}).json()["items"]
    assert all(item["queue_position"] is None and item["eta_s"] is None for item in listed)

    # A final job has no estimate (cancelled here: reading the rest would only cost time).
    for job_id in (second, first):
        assert stack.client.delete(f"/api/v1/jobs/{job_id}").status_code == 202
    for job_id in (first, second):
        ended = stack.wait(job_id, timeout=120)
        assert ended["state"] == "cancelled"
        assert ended["queue_position"] is None and ended["eta_s"] is None
