"""Edges of requests: numbers the database cannot hold, ids in any spelling, bodies that are not what the
route expects, and unexpected errors (logged once, with the request id).

Jobs are inserted straight into the migrated SQLite database of the conftest's data dir; nothing here needs
a broker, a blob store or a worker.
"""

from __future__ import annotations

import logging
import uuid
import warnings

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from pagemill import db
from pagemill.jobs import repository as repo
from pagemill.models import DEFAULT_TENANT
from pagemill.tenancy import service as tenancy
from pagemill.tenancy.principal import ADMIN_SCOPE, Actor
from tests.support.factories import make_job
from tests.unit.api.test_error_shape import assert_error_shape, auth_headers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

HUGE = "18446744073709551615"  # 2**64 - 1: above SQLite's 64-bit integers


def _raise_unexpected() -> None:
    raise RuntimeError("a bug in a route")


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The conftest's app plus a route with a bug."""
    app.add_api_route("/_test/unexpected", _raise_unexpected)
    return app


@pytest.fixture
def admin_key(api_key: str) -> str:
    """A key of the default tenant with the admin scope."""
    with db.session_scope() as session:
        _, secret = tenancy.create_key(
            session, tenant_id=DEFAULT_TENANT, tier=None, actor=Actor(subject="test"), scopes=[ADMIN_SCOPE]
        )
    return secret


@pytest.fixture
def job_id(api_key: str) -> str:
    """A queued job of the key's tenant, with one planned page."""
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(
            session,
            make_job(job_id, size_bytes=1, options={"formats": ["markdown"]}),
        )
        session.flush()
        repo.set_planned(session, job_id, 1, [0])
    return job_id


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/jobs/{job}/pages/" + HUGE, "number"),
        ("/api/v1/jobs/{job}/pages/2147483648", "number"),
        ("/api/v1/jobs/{job}/pages/-" + HUGE, "number"),
        ("/api/v1/jobs?limit=" + HUGE, "limit"),
        ("/api/v1/admin/audit?limit=" + HUGE, "limit"),
        # Times whose offset takes them past year 1 or 9999 in UTC (they overflowed where converted).
        ("/api/v1/admin/audit?since=0001-01-01T00:00:00%2B14:00", "since"),
        ("/api/v1/admin/audit?since=9999-12-31T23:59:59-14:00", "since"),
        # A cursor holding such a time: "0001-01-01T00:00:00+14:00|x".
        ("/api/v1/jobs?cursor=MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHx4", "cursor"),
    ],
)
def test_numbers_beyond_the_database_are_refused_by_name(
    client: TestClient, admin_key: str, job_id: str, path: str, field: str
) -> None:
    response = client.get(path.format(job=job_id), headers=auth_headers("key", admin_key))
    error = assert_error_shape(response, 422, "VALIDATION_ERROR")
    details = error["details"]
    assert isinstance(details, dict)
    # Framework validation lists the errors; the service's own (the cursor) names its field.
    named = [entry["field"] for entry in details["errors"]] if "errors" in details else [details["field"]]
    assert named == [field], error


def test_a_key_expiring_out_of_range_is_refused(client: TestClient, admin_key: str) -> None:
    body = {"tenant": "acme", "expires_at": "9999-12-31T23:59:59-14:00"}
    response = client.post("/api/v1/admin/keys", headers=auth_headers("key", admin_key), json=body)
    error = assert_error_shape(response, 422, "VALIDATION_ERROR")
    assert "expires_at" in str(error["message"]), error


def test_the_largest_page_number_is_a_plain_404(client: TestClient, api_key: str, job_id: str) -> None:
    response = client.get(f"/api/v1/jobs/{job_id}/pages/2147483647", headers=auth_headers("key", api_key))
    assert_error_shape(response, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "spelling",
    [str.upper, lambda i: i.replace("-", ""), lambda i: "{" + i + "}", lambda i: "urn:uuid:" + i.upper()],
    ids=["upper", "no-hyphens", "braces", "urn"],
)
def test_a_job_id_in_any_uuid_spelling_finds_the_job(
    client: TestClient, api_key: str, job_id: str, spelling: object
) -> None:
    written = spelling(job_id)  # type: ignore[operator]
    headers = auth_headers("key", api_key)
    response = client.get(f"/api/v1/jobs/{written}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == job_id
    page = client.get(f"/api/v1/jobs/{written}/pages/1", headers=headers)
    assert page.status_code == 200, page.text


def test_a_cancel_by_an_upper_case_id_cancels_the_job(client: TestClient, api_key: str, job_id: str) -> None:
    response = client.delete(f"/api/v1/jobs/{job_id.upper()}", headers=auth_headers("key", api_key))
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "cancelled"


def test_an_upper_case_key_id_revokes_the_key(client: TestClient, admin_key: str) -> None:
    headers = auth_headers("key", admin_key)
    created = client.post("/api/v1/admin/keys", headers=headers, json={"tenant": "acme"})
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    response = client.delete(f"/api/v1/admin/keys/{key_id.upper()}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] is not None


_MULTIPART_HINT = "multipart/form-data with a part named 'file' that has a filename"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"file": "not a file"}},  # a form field instead of a file part
        {"files": {"file": ("", b"%PDF-1.7")}},  # a file part without a filename
        {"data": {"formats": "text"}},  # no file part
        {"json": {"file": "report.pdf"}},  # not multipart at all
        {},  # no body
    ],
    ids=["field", "no-filename", "missing", "json", "empty"],
)
def test_a_document_not_sent_as_a_file_part_says_how_to_send_it(
    client: TestClient, api_key: str, request_kwargs: dict[str, object]
) -> None:
    response = client.post("/api/v1/documents", headers=auth_headers("key", api_key), **request_kwargs)  # type: ignore[arg-type]
    error = assert_error_shape(response, 422, "VALIDATION_ERROR")
    message = str(error["message"])
    assert _MULTIPART_HINT in message, message
    for internal in ("UploadFile", "<class", "Field required", "Invalid file"):
        assert internal not in message, message
    assert error["details"]["errors"][0]["field"] == "file"  # type: ignore[index]


@pytest.mark.parametrize(
    ("content", "content_type", "wording"),
    [
        (b"tenant=acme", "application/json", "not valid JSON"),
        (b"{", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "not a JSON object"),
        (b"", "application/json", "body is missing"),
        # Found by the schemathesis run: FastAPI answered bytes that are not UTF-8 with a bare 400.
        (b"\x10\xff\xfe\tN", "application/json", "not valid JSON"),
    ],
    ids=["form", "truncated", "array", "empty", "not-utf8"],
)
def test_an_admin_body_that_is_not_a_json_object_says_so(
    client: TestClient, admin_key: str, content: bytes, content_type: str, wording: str
) -> None:
    headers = {**auth_headers("key", admin_key), "Content-Type": content_type}
    response = client.post("/api/v1/admin/keys", headers=headers, content=content)
    error = assert_error_shape(response, 422, "VALIDATION_ERROR")
    message = str(error["message"])
    assert wording in message and "application/json" in message, message
    assert "Invalid 0" not in message and "JSON decode error" not in message, message
    assert error["details"]["errors"][0]["field"] == "body"  # type: ignore[index]


def test_field_errors_still_name_the_field(client: TestClient, admin_key: str) -> None:
    response = client.post(
        "/api/v1/admin/keys", headers=auth_headers("key", admin_key), json={"tier": "gold"}
    )
    error = assert_error_shape(response, 422, "VALIDATION_ERROR")
    assert str(error["message"]).startswith("Invalid "), error


def test_an_unexpected_error_is_logged_once_with_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = client.get("/_test/unexpected", headers={"X-Request-ID": "trace-500"})
    assert_error_shape(response, 500, "INTERNAL_ERROR")
    assert response.headers["x-request-id"] == "trace-500"
    with_traceback = [record for record in caplog.records if record.exc_info]
    assert len(with_traceback) == 1, [record.getMessage() for record in with_traceback]
    assert getattr(with_traceback[0], "request_id", None) == "trace-500"
    access = [record for record in caplog.records if record.name == "pagemill.access"]
    assert [record.getMessage().split()[2] for record in access] == ["500"]
