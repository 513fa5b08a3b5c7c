"""Cancelling: the job stops at the next page boundary, ends cancelled, keeps finished pages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.support import documents

pytestmark = pytest.mark.e2e


def test_cancel_running_job_keeps_finished_pages(stack: Stack, docs: Path) -> None:
    texts = [f"Page number {n} of a long scan" for n in range(1, 11)]
    pdf = documents.make_scanned_pdf(docs / "long-scan.pdf", texts)
    job_id = stack.submit_ok(pdf)
    deadline = time.monotonic() + 90
    while stack.job(job_id)["pages"]["done"] < 1:
        assert time.monotonic() < deadline, stack.worker.log_tail()
        time.sleep(0.05)

    response = stack.client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True

    job = stack.wait(job_id)
    assert job["state"] == "cancelled", job
    done = job["pages"]["done"]
    assert 1 <= done < 10, job
    pages = [stack.client.get(f"/api/v1/jobs/{job_id}/pages/{n}").json() for n in range(1, 11)]
    assert sum(p["state"] == "done" for p in pages) == done
    assert {p["state"] for p in pages} <= {"done", "skipped"}
    kept = next(p for p in pages if p["state"] == "done")
    assert "long scan" in kept["text"].lower()
    partial = stack.result(job_id, "text")
    assert partial.status_code == 200 and "long scan" in partial.text.lower()

    again = stack.client.delete(f"/api/v1/jobs/{job_id}")
    assert again.status_code == 202 and again.json()["state"] == "cancelled"
    # The worker survives and takes the next job.
    other = stack.wait(stack.submit_ok(documents.make_text_pdf(docs / "next.pdf", ["after cancel"])))
    assert other["state"] == "succeeded"


def test_cancel_finished_job_is_a_conflict(stack: Stack, docs: Path) -> None:
    job = stack.wait(stack.submit_ok(documents.make_text_pdf(docs / "done.pdf", ["finished"])))
    response = stack.client.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "CONFLICT"
