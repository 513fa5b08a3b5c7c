"""The API's access log: one line per request carrying the request id (echoed or made) and the tenant."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient


def _lines(caplog: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pagemill.access" and f" {path} " in r.getMessage()]


def test_access_log_carries_the_clients_request_id_and_tenant(
    client: TestClient,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="pagemill.access"):
        response = client.get(
            "/api/v1/usage", headers={"Authorization": f"Bearer {api_key}", "X-Request-ID": "trace-42.a"}
        )
    assert response.status_code == 200, response.text
    [line] = _lines(caplog, "/api/v1/usage")
    assert line.getMessage().startswith("GET /api/v1/usage 200 ")
    assert "tenant=default" in line.getMessage()
    # The request id is on the record itself (the log formatter prints it), not only in the response.
    assert getattr(line, "request_id", None) == "trace-42.a"


def test_access_log_has_the_made_up_id_of_a_refused_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pagemill.access"):
        response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    [line] = _lines(caplog, "/api/v1/jobs")
    assert "GET /api/v1/jobs 401" in line.getMessage()
    assert "tenant=-" in line.getMessage()
    assert getattr(line, "request_id", None) == response.headers["x-request-id"]
