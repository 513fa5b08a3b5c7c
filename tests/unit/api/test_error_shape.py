"""Every API error has one body shape and carries the request id; internals never reach the client.

The app is built on an empty data dir whose SQLite database is migrated and given one API key (the API
refuses every /api/v1 request without one). Only requests that are answered before any job, broker or blob
store is touched are made here.
"""

from __future__ import annotations

import re
import uuid
import warnings

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from starlette.exceptions import StarletteDeprecationWarning

from pagemill import db
from pagemill.errors import DependencyUnavailable, EncryptedFile
from pagemill.tenancy import keys

with warnings.catch_warnings():
    # Starlette 1.x warns at import when the test client runs on httpx rather than httpx2; the lock pins
    # httpx only. Harmless here, and a no-op once httpx2 is a dev dependency.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET = "hunter2-at-/srv/pagemill/private.sqlite3"


def _raise_unexpected() -> None:
    raise RuntimeError(f"boom: password {SECRET}")


def _raise_database_down() -> None:
    raise OperationalError(f"SELECT * FROM jobs -- {SECRET}", {}, ConnectionRefusedError(SECRET))


def _raise_dependency_unavailable() -> None:
    raise DependencyUnavailable("The blob store is unavailable; try again shortly.", service="storage")


def _raise_input_error() -> None:
    raise EncryptedFile(page_count=None)


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The conftest's app plus throwaway routes that reach the handlers no real route should reach."""
    app.add_api_route("/_test/unexpected", _raise_unexpected)
    app.add_api_route("/_test/database-down", _raise_database_down)
    app.add_api_route("/_test/unavailable", _raise_dependency_unavailable)
    app.add_api_route("/_test/input-error", _raise_input_error)
    return app


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The one error shape, with the request id in the body and the header; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert "x-request-id" in response.headers, f"no X-Request-ID on a {status} response"
    assert body["request_id"] == response.headers["x-request-id"]
    return error  # type: ignore[no-any-return]


def auth_headers(auth: str, api_key: str) -> dict[str, str]:
    """Credentials of one kind: the test's key, none, a malformed one, or a well-formed key nobody holds."""
    unknown = keys.generate_key().secret
    return {
        "key": {"Authorization": f"Bearer {api_key}"},
        "x-api-key": {"X-API-Key": api_key},
        "none": {},
        "malformed": {"Authorization": "Bearer pm_live_not-a-real-key"},
        "not-a-key": {"Authorization": "Bearer some-opaque-token"},
        "malformed-x-api-key": {"X-API-Key": "pm_live_" + "x" * 10},
        "unknown": {"Authorization": f"Bearer {unknown}"},
        "unknown-x-api-key": {"X-API-Key": unknown},
    }[auth]


CASES = [
    pytest.param("GET", "/api/v1/no-such-route", 404, "NOT_FOUND", "key", id="404-route"),
    # Without a key, /api/v1 says nothing about which routes exist.
    pytest.param("GET", "/api/v1/no-such-route", 401, "UNAUTHORIZED", "none", id="401-no-such-route"),
    pytest.param("GET", "/api/v1/jobs/not-a-job-id", 404, "NOT_FOUND", "key", id="404-job"),
    pytest.param("GET", "/api/v1/jobs/not-a-job-id", 404, "NOT_FOUND", "x-api-key", id="404-job-x-api-key"),
    pytest.param("PUT", "/api/v1/health/live", 405, "METHOD_NOT_ALLOWED", "none", id="405"),
    pytest.param("GET", "/api/v1/jobs?limit=0", 422, "VALIDATION_ERROR", "key", id="422-query"),
    pytest.param("GET", "/api/v1/jobs?state=sleeping", 422, "VALIDATION_ERROR", "key", id="422-enum"),
    pytest.param(
        "GET", f"/api/v1/jobs/{uuid.uuid4()}/pages/0", 422, "VALIDATION_ERROR", "key", id="422-pagemill"
    ),
    pytest.param("GET", "/_test/input-error", 422, "ENCRYPTED_FILE", "none", id="422-input-error"),
    pytest.param("GET", "/_test/unexpected", 500, "INTERNAL_ERROR", "none", id="500"),
    pytest.param("GET", "/_test/database-down", 503, "SERVICE_UNAVAILABLE", "none", id="503-database"),
    pytest.param("GET", "/_test/unavailable", 503, "SERVICE_UNAVAILABLE", "none", id="503-dependency"),
    pytest.param("GET", "/api/v1/jobs", 401, "UNAUTHORIZED", "none", id="401-no-key"),
    pytest.param("POST", "/api/v1/documents", 401, "UNAUTHORIZED", "none", id="401-no-key-upload"),
    pytest.param("GET", "/api/v1/jobs/not-a-job-id", 401, "UNAUTHORIZED", "malformed", id="401-malformed"),
    pytest.param("GET", "/api/v1/jobs", 401, "UNAUTHORIZED", "not-a-key", id="401-not-a-key"),
    pytest.param(
        "GET", "/api/v1/jobs", 401, "UNAUTHORIZED", "malformed-x-api-key", id="401-malformed-x-api-key"
    ),
    pytest.param("GET", "/api/v1/jobs", 401, "UNAUTHORIZED", "unknown", id="401-unknown"),
    pytest.param("GET", "/api/v1/jobs", 401, "UNAUTHORIZED", "unknown-x-api-key", id="401-unknown-x-api-key"),
    # Credentials are checked before parameters: no key, no hint about what the endpoint accepts.
    pytest.param("GET", "/api/v1/jobs?limit=0", 401, "UNAUTHORIZED", "none", id="401-before-422"),
]


def assert_auth_challenge(response: httpx.Response) -> None:
    """A 401 names the scheme to use (RFC 9110 11.6.1); no other error carries the challenge."""
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="pagemill"', dict(response.headers)
    else:
        assert "www-authenticate" not in response.headers, dict(response.headers)


@pytest.mark.parametrize(("method", "path", "status", "code", "auth"), CASES)
def test_errors_have_one_shape_and_echo_the_request_id(
    client: TestClient, api_key: str, method: str, path: str, status: int, code: str, auth: str
) -> None:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    headers = {"X-Request-ID": request_id, **auth_headers(auth, api_key)}
    response = client.request(method, path, headers=headers)
    assert_error_shape(response, status, code)
    assert_auth_challenge(response)
    assert response.headers["x-request-id"] == request_id
    assert response.json()["request_id"] == request_id


@pytest.mark.parametrize(("method", "path", "status", "code", "auth"), CASES)
def test_without_a_client_id_one_is_made_up(
    client: TestClient, api_key: str, method: str, path: str, status: int, code: str, auth: str
) -> None:
    response = client.request(method, path, headers=auth_headers(auth, api_key))
    assert_error_shape(response, status, code)
    assert_auth_challenge(response)
    assert re.fullmatch(r"[0-9a-f]{32}", response.json()["request_id"])


@pytest.mark.parametrize("unsafe", ["has spaces", "x" * 129, "new\\nline", "<script>", "semi;colon"])
def test_an_unsafe_client_request_id_is_replaced(client: TestClient, api_key: str, unsafe: str) -> None:
    response = client.get(
        "/api/v1/no-such-route", headers={"X-Request-ID": unsafe, **auth_headers("key", api_key)}
    )
    assert_error_shape(response, 404, "NOT_FOUND")
    assert response.headers["x-request-id"] != unsafe
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/_test/unexpected", "/_test/database-down"])
def test_internals_never_reach_the_client(client: TestClient, path: str) -> None:
    response = client.get(path)
    text = response.text
    for leak in ("hunter2", "/srv/", "private.sqlite3", "SELECT", "Traceback", "RuntimeError", "Refused"):
        assert leak not in text, f"{leak!r} leaked into {text}"
    assert response.json()["error"]["details"] == {}


def test_unexpected_errors_say_only_internal_error(client: TestClient) -> None:
    error = client.get("/_test/unexpected").json()["error"]
    assert error == {"code": "INTERNAL_ERROR", "message": "An internal error occurred.", "details": {}}


def test_a_missing_job_says_which_id(client: TestClient, api_key: str) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get("/api/v1/jobs/not-a-job-id", headers=auth_headers("key", api_key))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    error = assert_error_shape(response, 404, "NOT_FOUND")
    assert error["details"] == {"job_id": "not-a-job-id"}
    assert statements, "the key was not looked up"
    # Answered without querying jobs: an id that is not a UUID cannot name one.
    assert not [sql for sql in statements if re.search(r"\bjobs\b", sql)], statements


def test_request_validation_names_the_field(client: TestClient, api_key: str) -> None:
    error = assert_error_shape(
        client.get("/api/v1/jobs?limit=0", headers=auth_headers("key", api_key)), 422, "VALIDATION_ERROR"
    )
    details = error["details"]
    assert isinstance(details, dict)
    assert [entry["field"] for entry in details["errors"]] == ["limit"]
    assert "limit" in str(error["message"])


def test_a_page_number_below_one_names_the_field(client: TestClient, api_key: str) -> None:
    response = client.get(f"/api/v1/jobs/{uuid.uuid4()}/pages/0", headers=auth_headers("key", api_key))
    error = assert_error_shape(response, 422, "VALIDATION_ERROR")
    assert [entry["field"] for entry in error["details"]["errors"]] == ["number"]  # type: ignore[index]


def test_retryable_errors_say_when_to_retry(client: TestClient) -> None:
    response = client.get("/_test/unavailable")
    assert_error_shape(response, 503, "SERVICE_UNAVAILABLE")
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["details"] == {"service": "storage"}


def test_permanent_errors_have_no_retry_after(client: TestClient) -> None:
    assert "retry-after" not in client.get("/_test/input-error").headers


def test_405_says_which_methods_are_allowed(client: TestClient) -> None:
    # RFC 9110 15.5.6: a 405 response MUST carry Allow. Starlette puts it on its HTTPException; the
    # error handler has to keep the exception's headers when it re-renders the body.
    response = client.put("/api/v1/health/live")
    assert_error_shape(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers.get("allow", ""), dict(response.headers)


@pytest.mark.parametrize("auth", ["malformed", "unknown", "unknown-x-api-key"])
def test_a_refused_key_is_never_echoed(client: TestClient, api_key: str, auth: str) -> None:
    headers = auth_headers(auth, api_key)
    presented = next(iter(headers.values())).removeprefix("Bearer ")
    response = client.get("/api/v1/jobs", headers=headers)
    assert_error_shape(response, 401, "UNAUTHORIZED")
    assert presented not in response.text
    assert presented not in str(response.headers)


@pytest.mark.parametrize("path", ["/api/v1/health/live", "/api/v1/openapi.json", "/api/v1/docs", "/metrics"])
def test_health_docs_and_metrics_need_no_key(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert "www-authenticate" not in response.headers
