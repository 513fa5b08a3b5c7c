"""Submit a document, follow its job, read its result: born-digital PDFs, scans, images, in both modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.support import documents

pytestmark = pytest.mark.e2e

PAGES = [
    "Quarterly report alpha\nRevenue grew in the northern region.",
    "Second page bravo\nCosts stayed flat across all divisions.",
    "Third page charlie\nThe outlook for next year is positive.",
]


def test_born_digital_pdf_end_to_end(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "report.pdf", PAGES)
    response = stack.submit(pdf)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "queued"
    assert response.headers["location"] == f"/api/v1/jobs/{body['id']}"
    assert body["kind"] == "pdf" and body["filename"] == "report.pdf"

    job = stack.wait(body["id"])
    assert job["state"] == "succeeded", job
    assert job["pages"] == {"total": 3, "done": 3, "failed": 0}
    assert job["page_count"] == 3
    assert job["timings"]["running_ms"] is not None and job["error"] is None

    markdown = stack.result(body["id"], "markdown")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    positions = [markdown.text.index(page.split("\n")[0]) for page in PAGES]
    assert positions == sorted(positions), "pages must come in document order"

    text = stack.result(body["id"], "text")
    assert text.text.count("\f") == 2
    assert "Costs stayed flat across all divisions." in text.text.split("\f")[1]

    result = json.loads(stack.result(body["id"], "json").text)
    assert [p["page"] for p in result["pages"]] == [1, 2, 3]
    first = result["pages"][0]
    assert first["engine"] == "text_layer"
    assert "Revenue grew in the northern region." in first["text"]
    assert first["lines"] and all(0 <= v <= 1 for line in first["lines"] for v in line["bbox"])

    page = stack.client.get(f"/api/v1/jobs/{body['id']}/pages/2").json()
    assert page["page"] == 2 and page["state"] == "done" and "bravo" in page["text"]


def test_page_range_selects_pages(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "report.pdf", PAGES)
    job = stack.wait(stack.submit_ok(pdf, page_range="2-", formats="text"))
    assert job["state"] == "succeeded" and job["pages"]["total"] == 2
    text = stack.result(job["id"], "text").text
    assert "alpha" not in text and "bravo" in text and "charlie" in text
    assert stack.result(job["id"], "markdown").json()["error"]["code"] == "NOT_FOUND"


def test_rotated_scan_is_read_upright(stack: Stack, docs: Path) -> None:
    lines = ["Rotated scans are read upright", "The quick brown fox jumps over", "the lazy dog by the river"]
    pdf = documents.make_scanned_pdf(docs / "scan.pdf", ["\n".join(lines)], rotation=90)
    job = stack.wait(stack.submit_ok(pdf))
    assert job["state"] == "succeeded", job
    page = stack.client.get(f"/api/v1/jobs/{job['id']}/pages/1").json()
    assert page["engine"] in {"tesseract", "rapidocr"}
    # Fed a quarter turn clockwise, the page is read after turning it 270 degrees clockwise.
    assert page["rotation"] == 270
    text = " ".join(page["text"].lower().split())
    for line in lines:
        assert line.lower() in text


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_images_are_ocred(stack: Stack, docs: Path, fmt: str) -> None:
    image = documents.make_text_image(docs / f"photo.{fmt.lower()}", "Invoice number 4711", fmt=fmt)
    job = stack.wait(stack.submit_ok(image, formats="text"))
    assert job["state"] == "succeeded", job
    assert job["kind"] == {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}[fmt]
    assert "invoice number 4711" in stack.result(job["id"], "text").text.lower()


def test_multiframe_tiff_frames_are_pages(stack: Stack, docs: Path) -> None:
    tiff = documents.make_multiframe_tiff(docs / "fax.tiff", ["First frame", "Second frame"])
    job = stack.wait(stack.submit_ok(tiff, formats="text"))
    assert job["state"] == "succeeded" and job["pages"]["total"] == 2
    first, second = stack.result(job["id"], "text").text.lower().split("\f")
    assert "first" in first and "second" in second


def test_encrypted_pdf_opens_with_its_password(stack: Stack, docs: Path) -> None:
    pdf = documents.make_encrypted_pdf(docs / "secret.pdf", "s3cret", text="Revenue grew in the north")
    no_password = stack.wait(stack.submit_ok(pdf))
    assert no_password["state"] == "failed" and no_password["error"]["code"] == "ENCRYPTED_FILE"
    wrong = stack.wait(stack.submit_ok(pdf, password="nope"))
    assert wrong["error"]["code"] == "WRONG_PASSWORD"
    right = stack.wait(stack.submit_ok(pdf, password="s3cret"))
    assert right["state"] == "succeeded", right
    assert "Revenue grew" in stack.result(right["id"], "text").text


def test_list_jobs_paginates_and_filters(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "one.pdf", PAGES[:1])
    ids = [stack.submit_ok(pdf, formats="text") for _ in range(3)]
    for job_id in ids:
        stack.wait(job_id)
    first = stack.client.get("/api/v1/jobs", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = stack.client.get("/api/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    seen = [j["id"] for j in first["items"] + second["items"]]
    assert len(seen) == len(set(seen)), "pages must not overlap"
    assert seen[:3] == list(reversed(ids)), "newest first"
    succeeded = stack.client.get("/api/v1/jobs", params={"state": "succeeded", "limit": 100}).json()
    assert {j["state"] for j in succeeded["items"]} == {"succeeded"}
    bad = stack.client.get("/api/v1/jobs", params={"cursor": "!!"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
