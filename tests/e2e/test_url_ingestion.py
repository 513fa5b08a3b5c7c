"""URL jobs end to end, in both modes: the API accepts a URL (form field or JSON body) at once, the worker
fetches it through the SSRF guard and reads it like an upload; hostile URLs are refused at the door or by
the worker, and a canary on 127.0.0.1 never sees a connection.

The document server listens on 127.0.0.2, the one address the stack allows
(``PAGEMILL_EGRESS__ALLOW_NETWORKS``); the canary listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import documents
from tests.support.egress_servers import DOC_HOST, Canary, DocServer, doc_server
from tests.support.services import S3Server, distributed_env, embedded_env

pytestmark = pytest.mark.e2e

PAGES = ["Fetched report alpha\nThe document came from a URL.", "Second page bravo\nStill from the URL."]
# Small caps and short timeouts so the failure paths are quick to reach.
URL_ENV = {
    "PAGEMILL_EGRESS__ALLOW_NETWORKS": json.dumps([f"{DOC_HOST}/32"]),
    "PAGEMILL_EGRESS__READ_TIMEOUT_S": "1",
    "PAGEMILL_EGRESS__CONNECT_TIMEOUT_S": "2",
    "PAGEMILL_EGRESS__FETCH_ATTEMPTS": "2",
    "PAGEMILL_EGRESS__RETRY_BACKOFF_S": "0.2",
    "PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
}


@pytest.fixture(scope="module")
def url_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack of tests/e2e/conftest.py in each mode, with the document server's address allowed."""
    mode = request.param
    if mode == "embedded":
        env = embedded_env(tmp_path_factory.mktemp("embedded-url"))
    else:
        s3: S3Server = request.getfixturevalue("s3")
        env = distributed_env(request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url"), s3)
    with running_stack({**env, **URL_ENV}) as running:
        yield running


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "url_stack" in metafunc.fixturenames:
        metafunc.parametrize("url_stack", ["embedded", "distributed"], indirect=True, scope="module")


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary("127.0.0.1")
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServer]:
    folder = tmp_path_factory.mktemp("url-docs")
    with doc_server() as running:
        running.state.documents["report.pdf"] = documents.make_text_pdf(
            folder / "report.pdf", PAGES
        ).read_bytes()
        running.state.documents["flaky.pdf"] = running.state.documents["report.pdf"]
        running.state.documents["page.html"] = b"plain text: neither a document nor a recording"
        yield running


def submit_url(stack: Stack, url: str, **fields: str) -> dict[str, Any]:
    response = stack.client.post("/api/v1/documents", data={"url": url, **fields})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_url_job_by_form_and_by_json_reads_the_fetched_document(
    url_stack: Stack, server: DocServer
) -> None:
    url = server.url("/doc/report.pdf")
    accepted = submit_url(url_stack, url, formats="text,markdown")
    assert accepted["state"] == "queued" and accepted["source_url"] == url
    assert accepted["filename"] is None and accepted["sha256"] is None and accepted["kind"] is None

    by_json = url_stack.client.post(
        "/api/v1/documents", json={"url": url, "options": {"formats": ["text"], "page_range": "2"}}
    )
    assert by_json.status_code == 202, by_json.text
    assert by_json.headers["location"] == f"/api/v1/jobs/{by_json.json()['id']}"

    job = url_stack.wait(accepted["id"])
    assert job["state"] == "succeeded", job
    assert job["kind"] == "pdf" and job["filename"] == "report.pdf" and job["pages"]["done"] == 2
    assert job["size_bytes"] == len(server.state.documents["report.pdf"])
    text = url_stack.result(accepted["id"], "text").text
    assert "The document came from a URL." in text and "Still from the URL." in text

    second = url_stack.wait(by_json.json()["id"])
    assert second["state"] == "succeeded", second
    assert second["options"]["formats"] == ["text"] and second["pages"]["total"] == 1
    assert url_stack.result(second["id"], "text").text.strip().startswith("Second page bravo")


def test_hostile_urls_are_refused_at_submission(url_stack: Stack, canary: Canary) -> None:
    port = canary.port
    hostile = [
        f"http://127.0.0.1:{port}/",
        f"http://[::1]:{port}/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://localhost:{port}/",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/_x",
        f"http://user:secret@{DOC_HOST}/doc/report.pdf",
    ]
    for url in hostile:
        response = url_stack.client.post("/api/v1/documents", data={"url": url})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["code"] == "URL_FORBIDDEN", (url, response.text)
        as_json = url_stack.client.post("/api/v1/documents", json={"url": url})
        assert as_json.status_code == 422 and as_json.json()["error"]["code"] == "URL_FORBIDDEN"
    assert canary.connections == 0
    # A malformed JSON body is a validation error like any other.
    bad = url_stack.client.post("/api/v1/documents", json={"url": "http://x.test/", "options": {"nope": 1}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"


def test_fetch_failures_end_the_job_with_their_code(
    url_stack: Stack, server: DocServer, canary: Canary
) -> None:
    server.state.failures_left["flaky.pdf"] = 1  # one 503, then the document: retried and read
    cases = {
        "redirect_to_canary": (server.url(f"/redirect?to=http://127.0.0.1:{canary.port}/"), "URL_FORBIDDEN"),
        "redirect_to_localhost": (
            server.url(f"/redirect?to=http://localhost:{canary.port}/"),
            "URL_FORBIDDEN",
        ),
        "not_found": (server.url("/status/404"), "URL_HTTP_ERROR"),
        "too_large": (server.url("/endless"), "URL_TOO_LARGE"),
        "slow": (server.url("/slow"), "URL_TIMEOUT"),
        "refused": (f"http://{DOC_HOST}:1/doc.pdf", "URL_UNREACHABLE"),
        "html": (server.url("/doc/page.html"), "UNSUPPORTED_TYPE"),
        "flaky": (server.url("/flaky/flaky.pdf"), None),
    }
    ids = {name: submit_url(url_stack, url, formats="text")["id"] for name, (url, _) in cases.items()}
    for name, (_, code) in cases.items():
        job = url_stack.wait(ids[name])
        if code is None:
            assert job["state"] == "succeeded", (name, job)
        else:
            assert job["state"] == "failed", (name, job)
            assert job["error"]["code"] == code, (name, job)
    not_found = url_stack.job(ids["not_found"])["error"]["details"]
    assert not_found["status"] == 404 and not_found["attempts"] == 1
    assert url_stack.job(ids["slow"])["error"]["details"]["attempts"] == 2
    # The oversized body was cut off near the cap, not downloaded whole.
    assert server.state.bytes_sent["/endless"] < 2 * 1024 * 1024 + 16 * 1024 * 1024
    assert canary.connections == 0


def test_idempotency_key_replays_the_same_url_and_refuses_another(
    url_stack: Stack, server: DocServer
) -> None:
    headers = {"Idempotency-Key": f"url-{uuid.uuid4()}"}
    url = server.url("/doc/report.pdf")
    first = url_stack.client.post("/api/v1/documents", data={"url": url}, headers=headers)
    assert first.status_code == 202, first.text
    again = url_stack.client.post(
        "/api/v1/documents",
        json={"url": url, "options": {"formats": ["markdown", "text", "json"]}},
        headers=headers,
    )
    assert again.status_code == 202 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = url_stack.client.post(
        "/api/v1/documents", data={"url": server.url("/doc/flaky.pdf")}, headers=headers
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_the_openapi_schema_documents_both_request_bodies(url_stack: Stack, docs: Path) -> None:
    schema = url_stack.client.get("/api/v1/openapi.json").json()
    content = schema["paths"]["/api/v1/documents"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    assert content["application/json"]["schema"]["required"] == ["url"]
    assert "URL_FORBIDDEN" in json.dumps(schema["paths"]["/api/v1/documents"]["post"]["responses"])
