"""Batches (issue 10): mixed good and hostile items, per-item refusals, whole-batch refusals (size, quota)
before anything is stored, tenancy, listing, audit and cancel, embedded and distributed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LIFECYCLE_FREE_FILE_BYTES, LIFECYCLE_FREE_PER_DAY
from tests.e2e.stack import Stack
from tests.e2e.test_api_examples import _example, _shape
from tests.support import documents, tus_client
from tests.support.egress_servers import DOC_HOST, doc_server

pytestmark = pytest.mark.e2e

FREE_PER_DAY = LIFECYCLE_FREE_PER_DAY


def post_batch(client: httpx.Client, paths: list[Path], **fields: str) -> httpx.Response:
    """POST files as one batch (the repeated `files` field) with form fields."""
    handles = [path.open("rb") for path in paths]
    try:
        parts = [("files", (path.name, handle)) for path, handle in zip(paths, handles, strict=True)]
        return client.post("/api/v1/batches", files=parts, data=fields)
    finally:
        for handle in handles:
            handle.close()


def wait_batch(client: httpx.Client, batch_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll a batch until no job of it is queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/batches/{batch_id}")
        assert response.status_code == 200, response.text
        batch: dict[str, Any] = response.json()
        if batch["state"] == "finished":
            return batch
        assert time.monotonic() < deadline, f"batch still active after {timeout}s: {batch}"
        time.sleep(0.2)


def test_one_bad_item_never_fails_the_others(lifecycle_stack: Stack, docs: Path) -> None:
    good_a = documents.make_text_pdf(docs / "alpha.pdf", ["Alpha batch page one", "Alpha batch page two"])
    good_b = documents.make_text_pdf(docs / "bravo.pdf", ["Bravo batch single page"])
    corrupt = documents.make_corrupt_pdf(docs / "corrupt.pdf")  # passes sniffing, fails in the worker
    unsupported = docs / "notes.txt"
    unsupported.write_text("plain text is not a document type")
    empty = docs / "empty.pdf"
    empty.write_bytes(b"")

    response = post_batch(
        lifecycle_stack.client, [good_a, unsupported, corrupt, empty, good_b], formats="markdown,text"
    )
    assert response.status_code == 202, response.text
    submitted = response.json()
    assert response.headers["location"] == f"/api/v1/batches/{submitted['id']}"
    assert submitted["items_total"] == 5 and len(submitted["job_ids"]) == 3
    refused = {
        item["source"]: item["error"]["code"] for item in submitted["items"] if item["state"] == "refused"
    }
    assert refused == {"notes.txt": "UNSUPPORTED_TYPE", "empty.pdf": "EMPTY_FILE"}
    assert [item["position"] for item in submitted["items"]] == [0, 1, 2, 3, 4]
    assert _shape(submitted) == _shape(json.loads(_example("### POST /api/v1/batches", "json")))

    batch = wait_batch(lifecycle_stack.client, submitted["id"])
    states = {item["source"]: item["state"] for item in batch["items"]}
    assert states == {
        "alpha.pdf": "succeeded",
        "notes.txt": "refused",
        "corrupt.pdf": "failed",
        "empty.pdf": "refused",
        "bravo.pdf": "succeeded",
    }
    assert batch["counts"]["succeeded"] == 2 and batch["counts"]["failed"] == 1
    assert batch["counts"]["refused"] == 2 and batch["counts"]["queued"] == 0
    assert batch["pages"]["done"] == 3
    failed = next(item for item in batch["items"] if item["source"] == "corrupt.pdf")
    assert failed["error"]["code"] == "CORRUPT_FILE"

    by_name = {item["source"]: item["job_id"] for item in batch["items"]}
    text = lifecycle_stack.result(by_name["alpha.pdf"], "text")
    assert text.status_code == 200 and "Alpha batch page two" in text.text
    job = lifecycle_stack.job(by_name["bravo.pdf"])
    assert job["batch_id"] == submitted["id"] and job["options"]["formats"] == ["markdown", "text"]

    audit = lifecycle_stack.client.get("/api/v1/admin/audit", params={"action": "batch.create"}).json()
    assert any(event["target"] == submitted["id"] for event in audit["items"])


def test_batches_are_listed_and_private_to_their_tenant(lifecycle_stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "listed.pdf", ["Listed batch", str(time.time_ns())])
    first = post_batch(lifecycle_stack.client, [pdf]).json()["id"]
    second = post_batch(lifecycle_stack.client, [pdf]).json()["id"]

    page = lifecycle_stack.client.get("/api/v1/batches", params={"limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [second] and page["next_cursor"]
    following = lifecycle_stack.client.get(
        "/api/v1/batches", params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [item["id"] for item in following["items"]] == [first]

    other = lifecycle_stack.create_key("batches-other-tenant")
    with lifecycle_stack.client_for(other["secret"]) as client:
        assert client.get(f"/api/v1/batches/{first}").status_code == 404
        assert client.delete(f"/api/v1/batches/{first}").status_code == 404
        assert client.get("/api/v1/batches").json()["items"] == []


def test_a_batch_is_refused_whole_over_its_tier(lifecycle_stack: Stack, docs: Path) -> None:
    free = lifecycle_stack.create_key("batches-free", tier="free")
    pdfs = [documents.make_text_pdf(docs / f"free-{i}.pdf", [f"Free page {i}"]) for i in range(5)]
    with lifecycle_stack.client_for(free["secret"]) as client:
        too_many = post_batch(client, pdfs)
        assert too_many.status_code == 422, too_many.text
        assert too_many.json()["error"]["code"] == "BATCH_TOO_LARGE"

        # 4 items, 3 documents left today: refused before anything is stored or counted.
        over_quota = post_batch(client, pdfs[:4])
        assert over_quota.status_code == 429, over_quota.text
        error = over_quota.json()["error"]
        assert error["code"] == "QUOTA_EXCEEDED" and error["details"]["remaining"] == FREE_PER_DAY
        assert client.get("/api/v1/usage").json()["day"]["used"] == 0
        assert client.get("/api/v1/jobs").json()["items"] == []

        fits = post_batch(client, pdfs[:3])
        assert fits.status_code == 202, fits.text
        assert client.get("/api/v1/usage").json()["day"]["used"] == FREE_PER_DAY


def test_the_tier_file_size_holds_each_file_not_the_whole_batch(lifecycle_stack: Stack, docs: Path) -> None:
    size = LIFECYCLE_FREE_FILE_BYTES * 3 // 4
    fits = [documents.make_padded_pdf(docs / f"fits-{i}.pdf", [f"Fits {i}"], size) for i in range(2)]
    too_big = documents.make_padded_pdf(docs / "too-big.pdf", ["Too big"], LIFECYCLE_FREE_FILE_BYTES + 1000)
    free = lifecycle_stack.create_key("batches-free-sizes", tier="free")
    with lifecycle_stack.client_for(free["secret"]) as client:
        # Together 2.5 times the tier's file size: a batch body is not one file.
        response = post_batch(client, [*fits, too_big])
        assert response.status_code == 202, response.text
        items = response.json()["items"]
    assert [item["state"] for item in items] == ["queued", "queued", "refused"]
    assert items[2]["error"]["code"] == "FILE_TOO_LARGE"


def test_cancelling_a_batch_cancels_its_unfinished_jobs(lifecycle_stack: Stack, docs: Path) -> None:
    # Unique text: the result cache (on in this stack) must find no earlier job of these documents.
    pdfs = [
        documents.make_text_pdf(docs / f"long-{i}.pdf", [f"Cancel {i} page {n}" for n in range(40)])
        for i in range(6)
    ]
    submitted = post_batch(lifecycle_stack.client, pdfs, formats="text").json()
    cancelled = lifecycle_stack.client.delete(f"/api/v1/batches/{submitted['id']}")
    assert cancelled.status_code == 202, cancelled.text

    batch = wait_batch(lifecycle_stack.client, submitted["id"])
    assert {item["state"] for item in batch["items"]} <= {"cancelled", "succeeded"}
    # Six 40-page jobs on a two-process worker cannot all be done by the time the DELETE arrives.
    assert batch["counts"]["cancelled"] >= 1
    audit = lifecycle_stack.client.get("/api/v1/admin/audit", params={"action": "batch.cancel"}).json()
    assert any(event["target"] == submitted["id"] for event in audit["items"])
    # Cancelling a finished batch changes nothing.
    again = lifecycle_stack.client.delete(f"/api/v1/batches/{submitted['id']}").json()
    assert again["counts"] == batch["counts"]


def test_urls_and_uploads_are_batch_items_too(lifecycle_stack: Stack, docs: Path) -> None:
    local = documents.make_text_pdf(docs / "local.pdf", ["Batch file item", str(time.time_ns())])
    fetched = documents.make_text_pdf(docs / "fetched.pdf", ["Batch URL item fetched", str(time.time_ns())])
    uploaded = documents.make_text_pdf(docs / "uploaded.pdf", ["Batch upload item", str(time.time_ns())])
    client = lifecycle_stack.client
    path = tus_client.create_ok(client, uploaded.stat().st_size, filename="uploaded.pdf", submit="false")
    assert tus_client.patch(client, path, 0, uploaded.read_bytes()).status_code == 204
    upload_id = path.rsplit("/", 1)[-1]

    with doc_server(DOC_HOST) as server, local.open("rb") as f:
        server.state.documents["fetched.pdf"] = fetched.read_bytes()
        fields = {
            "urls": [server.url("/doc/fetched.pdf"), "http://127.0.0.1:9/loopback.pdf"],
            "upload_ids": [upload_id, "00000000-0000-4000-8000-000000000000"],
            "formats": "text",
        }
        response = client.post("/api/v1/batches", files=[("files", (local.name, f))], data=fields)
        assert response.status_code == 202, response.text
        submitted = response.json()
        batch = wait_batch(client, submitted["id"])

    kinds = [(item["kind"], item["state"]) for item in batch["items"]]
    assert kinds == [
        ("file", "succeeded"),
        ("url", "succeeded"),
        ("url", "refused"),
        ("upload", "succeeded"),
        ("upload", "refused"),
    ]
    assert batch["items"][2]["error"]["code"] == "URL_FORBIDDEN"
    assert batch["items"][4]["error"]["code"] == "NOT_FOUND"
    texts = [lifecycle_stack.result(batch["items"][i]["job_id"], "text").text for i in (0, 1, 3)]
    assert "Batch file item" in texts[0] and "Batch URL item fetched" in texts[1]
    assert "Batch upload item" in texts[2]
    assert all(lifecycle_stack.job(job_id)["batch_id"] == batch["id"] for job_id in batch["job_ids"])
