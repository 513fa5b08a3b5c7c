"""Edges only a real server shows: requests uvicorn refuses before the app, how a real API process logs an
unhandled error, and the tier's page cap against the page range (with the page count of a failed job).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import FINAL_STATES, Stack, running_stack
from tests.support import documents
from tests.support.faults.sitecustomize import FAULT_ENV, FAULT_MESSAGE
from tests.support.services import REPO_ROOT, embedded_env, pagemill_api, wait_for_log

pytestmark = pytest.mark.e2e

FAULTS_DIR = Path(__file__).resolve().parents[1] / "support" / "faults"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = embedded_env(tmp_path_factory.mktemp("edges-data"))
    # The free tier keeps its page cap; its request rate is raised so polling a job does not hit it.
    env["PAGEMILL_TIERS__FREE__RATE_LIMIT"] = "6000/minute"
    # The assertions below read the text log line ("... request_id=..."); a process without a terminal logs
    # JSON by default (tests/unit/test_logging.py covers that format).
    env["PAGEMILL_LOG_FORMAT"] = "text"
    with running_stack(env) as running:
        yield running


def raw_request(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is and read the answer until the server closes: status, headers, body."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_error_body(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> str:
    """The one error shape with the request id in body and header; the request id."""
    assert status == expected, body
    assert headers["content-type"] == "application/json", headers
    payload = json.loads(body)
    assert set(payload) == {"error", "request_id"}, payload
    assert payload["error"]["code"] == code and payload["error"]["message"], payload
    assert re.fullmatch(r"[0-9a-f]{32}", payload["request_id"]), payload
    assert headers["x-request-id"] == payload["request_id"], headers
    return str(payload["request_id"])


@pytest.mark.parametrize("query_bytes", [70_000, 17_000], ids=["70KB", "17KB"])
def test_a_long_query_string_gets_the_error_body(stack: Stack, query_bytes: int) -> None:
    request = b"GET /api/v1/health/live?q=" + b"a" * query_bytes + b" HTTP/1.1\r\nHost: pagemill\r\n\r\n"
    status, headers, body = raw_request(stack.base_url, request)
    request_id = assert_error_body(status, headers, body, 414, "URI_TOO_LONG")
    assert f"request_id={request_id}" in stack.api.log_text()


def test_a_query_string_under_the_limit_still_works(stack: Stack) -> None:
    response = stack.client.get("/api/v1/health/live", params={"q": "a" * 8000})
    assert response.status_code == 200, response.text


def test_oversized_headers_get_the_error_body(stack: Stack) -> None:
    request = b"GET /api/v1/health/live HTTP/1.1\r\nHost: pagemill\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n"
    status, headers, body = raw_request(stack.base_url, request)
    assert_error_body(status, headers, body, 431, "HEADERS_TOO_LARGE")


def test_a_request_that_is_not_http_gets_the_error_body(stack: Stack) -> None:
    status, headers, body = raw_request(stack.base_url, b"HELLO THERE\r\n\r\n")
    assert_error_body(status, headers, body, 400, "BAD_REQUEST")


def test_an_unhandled_error_is_logged_once_with_its_request_id(stack: Stack) -> None:
    # A second API process on the same data dir, with a bug injected into GET /usage.
    env = {
        **stack.env,
        "PYTHONPATH": os.pathsep.join([str(FAULTS_DIR), str(REPO_ROOT)]),
        FAULT_ENV: "usage",
    }
    with pagemill_api(env) as (api, base_url), httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.get(
            "/api/v1/usage", headers={"Authorization": f"Bearer {stack.key}", "X-Request-ID": "trace-500-x"}
        )
        assert response.status_code == 500, response.text
        assert response.json() == {
            "error": {"code": "INTERNAL_ERROR", "message": "An internal error occurred.", "details": {}},
            "request_id": "trace-500-x",
        }
        assert response.headers["x-request-id"] == "trace-500-x"
        # The server logs what it logs about the failed request before it serves the next one: a request
        # after it (on a new connection: the old one may be closed), once in the log, is the barrier after
        # which the log is complete.
        httpx.get(f"{base_url}/api/v1/health/live", headers={"X-Request-ID": "after-500"}, timeout=30)
        wait_for_log(api, r"request_id=after-500")
        log = api.log_text()
    assert log.count("Traceback (most recent call last)") == 1, log
    assert log.count(FAULT_MESSAGE) == 1, log
    [line] = [line for line in log.splitlines() if "unhandled error" in line]
    assert "request_id=trace-500-x" in line, line
    [access] = [line for line in log.splitlines() if "GET /api/v1/usage 500" in line]
    assert "request_id=trace-500-x" in access, log


def test_an_upper_case_job_id_finds_the_job(stack: Stack, docs: Path) -> None:
    job_id = stack.submit_ok(documents.make_text_pdf(docs / "a.pdf", ["Upper case"]))
    assert stack.wait(job_id.upper())["id"] == job_id


@pytest.fixture(scope="module")
def free_client(stack: Stack) -> Iterator[httpx.Client]:
    """A client with a free-tier key (20 pages per document)."""
    with stack.client_for(str(stack.create_key("freebie", "free")["secret"])) as client:
        yield client


def _submit_and_wait(client: httpx.Client, path: Path, **fields: str) -> dict[str, Any]:
    """Submit as ``client``'s tenant and poll (as that tenant) until the job is final."""
    with path.open("rb") as f:
        response = client.post("/api/v1/documents", files={"file": (path.name, f)}, data=fields)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 90
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{response.json()['id']}").json()
        if job["state"] in FINAL_STATES:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_the_tier_page_cap_counts_the_pages_of_the_page_range(
    stack: Stack, free_client: httpx.Client, docs: Path
) -> None:
    pdf = documents.make_many_pages_pdf(docs / "thirty.pdf", 30)
    job = _submit_and_wait(free_client, pdf, page_range="1-5", formats="text")
    assert job["state"] == "succeeded", job
    assert job["page_count"] == 30 and job["pages"] == {"total": 5, "done": 5, "failed": 0}, job


def test_a_page_range_over_the_tier_cap_fails_with_the_page_count(
    stack: Stack, free_client: httpx.Client, docs: Path
) -> None:
    pdf = documents.make_many_pages_pdf(docs / "thirty.pdf", 30)
    for fields in ({}, {"page_range": "2-25"}):
        job = _submit_and_wait(free_client, pdf, **fields)
        assert job["state"] == "failed", job
        error = job["error"]
        assert isinstance(error, dict) and error["code"] == "TOO_MANY_PAGES", job
        assert error["details"]["max_pages"] == 20, job
        assert job["page_count"] == 30, job  # known once the document was opened, failed or not


def test_a_document_over_the_service_cap_fails_with_its_page_count(stack: Stack, docs: Path) -> None:
    # The e2e stack caps every document at 40 pages (tests.e2e.stack.TEST_LIMITS).
    job = stack.wait(stack.submit_ok(documents.make_many_pages_pdf(docs / "big.pdf", 45)))
    assert job["state"] == "failed" and job["error"]["code"] == "TOO_MANY_PAGES", job
    assert job["page_count"] == 45, job
