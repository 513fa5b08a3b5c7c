"""Idempotency-Key on submission: a retried POST returns the first job instead of making (and counting)
a second one, in both modes."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.support import documents

pytestmark = pytest.mark.e2e

TEXT_LAYER = {"ocr_mode": "text_layer"}


def _post(client: httpx.Client, pdf: bytes, key: str | None, **fields: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    data = {**TEXT_LAYER, **fields}
    return client.post("/api/v1/documents", files={"file": ("doc.pdf", pdf)}, data=data, headers=headers)


def _documents_today(stack: Stack) -> int:
    response = stack.client.get("/api/v1/usage")
    assert response.status_code == 200, response.text
    used: int = response.json()["day"]["used"]
    return used


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    error: dict[str, Any] = body["error"]
    return error


def test_a_retried_submission_returns_the_first_job(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "doc.pdf", ["Idempotent submission"]).read_bytes()
    key = f"retry-{uuid.uuid4()}"
    before = _documents_today(stack)

    first = _post(stack.client, pdf, key)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    again = _post(stack.client, pdf, key)
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert _documents_today(stack) == before + 1  # counted once

    # After the job finished, the replay still answers with it (now succeeded).
    assert stack.wait(first.json()["id"])["state"] == "succeeded"
    late = _post(stack.client, pdf, key)
    assert late.status_code == 202 and late.json()["id"] == first.json()["id"]
    assert late.json()["state"] == "succeeded"

    # Without a key, the same document is a new job.
    fresh = _post(stack.client, pdf, None)
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]


def test_a_key_reused_for_another_document_or_options_is_refused(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "a.pdf", ["First document"]).read_bytes()
    other = documents.make_text_pdf(docs / "b.pdf", ["Second document"]).read_bytes()
    key = f"reuse-{uuid.uuid4()}"
    first = _post(stack.client, pdf, key)
    assert first.status_code == 202, first.text

    error = _error(_post(stack.client, other, key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert error["details"]["job_id"] == first.json()["id"]
    _error(_post(stack.client, pdf, key, formats="text"), 422, "IDEMPOTENCY_KEY_REUSED")


def test_keys_are_per_tenant(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "doc.pdf", ["Tenant scoped keys"]).read_bytes()
    key = f"shared-{uuid.uuid4()}"
    mine = _post(stack.client, pdf, key)
    tenant = f"idem-{uuid.uuid4().hex[:8]}"
    with stack.client_for(str(stack.create_key(tenant, "enterprise")["secret"])) as theirs:
        other = _post(theirs, pdf, key)
    assert mine.status_code == 202 and other.status_code == 202, (mine.text, other.text)
    assert other.json()["id"] != mine.json()["id"]
    assert "idempotent-replayed" not in other.headers


def test_concurrent_retries_make_one_job(stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "doc.pdf", ["Concurrent retries"]).read_bytes()
    key = f"race-{uuid.uuid4()}"
    racers = 8
    start = threading.Barrier(racers)

    def race(_: int) -> httpx.Response:
        with stack.client_for(stack.key) as client:
            start.wait(timeout=30)
            return _post(client, pdf, key)

    with ThreadPoolExecutor(racers) as pool:
        responses = list(pool.map(race, range(racers)))

    accepted = [r for r in responses if r.status_code == 202]
    assert accepted, [r.text for r in responses]
    assert len({r.json()["id"] for r in accepted}) == 1, [r.text for r in accepted]
    for refused in (r for r in responses if r.status_code != 202):
        _error(refused, 409, "CONFLICT")
        assert refused.headers["retry-after"] == "1"
    # A retry after the race gets the one job.
    retry = _post(stack.client, pdf, key)
    assert retry.status_code == 202 and retry.json()["id"] == accepted[0].json()["id"]


@pytest.mark.parametrize("bad", ["has space", "x" * 256, "tab\there"])
def test_a_malformed_key_is_a_validation_error(stack: Stack, docs: Path, bad: str) -> None:
    pdf = documents.make_text_pdf(docs / "doc.pdf", ["Malformed key"]).read_bytes()
    error = _error(_post(stack.client, pdf, bad), 422, "VALIDATION_ERROR")
    assert "idempotency" in error["message"].lower(), error
