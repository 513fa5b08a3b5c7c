"""The result cache (issue 10): a resubmitted document gets a copy of the earlier results without page work;
`cache=false`, other options and other tenants get fresh work; the copy outlives a purge of its source;
usage reports cached documents. Embedded and distributed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.support import documents

pytestmark = pytest.mark.e2e

PAGES = ["Cached report page one\nNumbers that do not change.", "Cached report page two\nThe end."]


@pytest.fixture
def report(docs: Path, request: pytest.FixtureRequest) -> Path:
    """A two-page PDF unique to this test (its name in the text), so no other test's job matches it."""
    return documents.make_text_pdf(docs / "report.pdf", [f"{request.node.name}\n{PAGES[0]}", PAGES[1]])


def test_a_resubmitted_document_is_answered_from_the_cache(lifecycle_stack: Stack, report: Path) -> None:
    first = lifecycle_stack.wait(lifecycle_stack.submit_ok(report))
    assert first["state"] == "succeeded" and first["cached_from"] is None
    used_before = lifecycle_stack.client.get("/api/v1/usage").json()

    response = lifecycle_stack.submit(report)
    assert response.status_code == 202, response.text
    cached = response.json()
    # Answered at once: no ingest, no page task.
    assert cached["state"] == "succeeded" and cached["cached_from"] == first["id"]
    assert cached["id"] != first["id"] and cached["pages"] == first["pages"]
    for fmt in ("markdown", "text", "json"):
        assert (
            lifecycle_stack.result(cached["id"], fmt).content
            == lifecycle_stack.result(first["id"], fmt).content
        )
    # No page work: the job was final in the 202 itself (a job to read is published only after the 202
    # went out, so its answer always says queued), started and ended when it was made, and its pages are
    # the first job's pages, as the first job's workers left them.
    assert cached["started_at"] == cached["finished_at"] == cached["created_at"]
    original_page = lifecycle_stack.client.get(f"/api/v1/jobs/{first['id']}/pages/2").json()
    copied_page = lifecycle_stack.client.get(f"/api/v1/jobs/{cached['id']}/pages/2").json()
    assert copied_page == original_page and copied_page["engine"] == "text_layer"

    usage = lifecycle_stack.client.get("/api/v1/usage").json()
    assert usage["cached_this_month"] == used_before["cached_this_month"] + 1
    assert usage["month"]["used"] == used_before["month"]["used"] + 1  # still a document for the quota
    assert usage["pages_this_month"] == used_before["pages_this_month"]  # but no page was read


def test_cache_false_other_options_and_other_tenants_get_fresh_work(
    lifecycle_stack: Stack, report: Path
) -> None:
    first = lifecycle_stack.wait(lifecycle_stack.submit_ok(report))
    assert first["state"] == "succeeded"

    response = lifecycle_stack.submit(report, cache="false")
    assert response.status_code == 202 and response.json()["state"] == "queued"
    fresh = lifecycle_stack.wait(response.json()["id"])
    assert fresh["state"] == "succeeded" and fresh["cached_from"] is None

    other_options = lifecycle_stack.wait(lifecycle_stack.submit_ok(report, formats="text"))
    assert other_options["cached_from"] is None

    other = lifecycle_stack.create_key("cache-other-tenant")
    with lifecycle_stack.client_for(other["secret"]) as client, report.open("rb") as f:
        response = client.post("/api/v1/documents", files={"file": (report.name, f)})
    assert response.status_code == 202 and response.json()["cached_from"] is None


def test_a_cached_copy_outlives_a_purge_of_its_source(lifecycle_stack: Stack, report: Path) -> None:
    first = lifecycle_stack.wait(lifecycle_stack.submit_ok(report))
    cached = lifecycle_stack.submit(report).json()
    assert cached["cached_from"] == first["id"]
    markdown = lifecycle_stack.result(cached["id"]).content

    purged = lifecycle_stack.client.delete(f"/api/v1/jobs/{first['id']}", params={"purge": "true"})
    assert purged.status_code == 200, purged.text
    assert lifecycle_stack.result(first["id"]).status_code == 410
    assert lifecycle_stack.result(cached["id"]).content == markdown
    assert lifecycle_stack.client.get(f"/api/v1/jobs/{cached['id']}/pages/1").status_code == 200

    # A purged (expired) job is no cache source any more: the next submission copies the surviving copy.
    again = lifecycle_stack.submit(report).json()
    assert again["cached_from"] == cached["id"]


def test_batch_items_use_the_cache(lifecycle_stack: Stack, report: Path, docs: Path) -> None:
    first = lifecycle_stack.wait(lifecycle_stack.submit_ok(report))
    other = documents.make_text_pdf(docs / "other.pdf", ["A document read for the first time in a batch"])
    with report.open("rb") as a, other.open("rb") as b:
        response = lifecycle_stack.client.post(
            "/api/v1/batches", files=[("files", (report.name, a)), ("files", (other.name, b))]
        )
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert items[0]["cached_from"] == first["id"] and items[0]["state"] == "succeeded"
    assert items[1]["cached_from"] is None
    assert lifecycle_stack.wait(items[1]["job_id"])["state"] == "succeeded"
