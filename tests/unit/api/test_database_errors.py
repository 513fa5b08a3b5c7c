"""A database that is gone answers 503 + Retry-After, whatever the driver calls it; any other database
error is a bug: 500 with the one error body. Raised from a route and from authentication."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError

from api import middleware
from pagemill.jobs import service as jobs_service


def _terminated() -> InternalError:
    # How SQLAlchemy reports Postgres ending a session left idle in a transaction: an InternalError after
    # which the connection is dropped.
    return InternalError(
        "SELECT 1",
        {},
        Exception("terminating connection due to idle-in-transaction timeout"),
        connection_invalidated=True,
    )


CASES = [
    pytest.param(OperationalError("SELECT 1", {}, Exception("server closed the connection")), 503, id="down"),
    pytest.param(_terminated(), 503, id="connection-ended"),
    pytest.param(IntegrityError("INSERT", {}, Exception("duplicate key")), 500, id="a-bug"),
]


@pytest.mark.parametrize(("error", "status"), CASES)
def test_a_route_meeting_a_database_error(
    client: TestClient, api_key: str, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int
) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(jobs_service, "list_jobs", fail)
    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == ("SERVICE_UNAVAILABLE" if status == 503 else "INTERNAL_ERROR")
    assert body["request_id"]
    assert ("retry-after" in response.headers) == (status == 503)


def test_authentication_meeting_a_dropped_connection_is_503(
    client: TestClient, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise _terminated()

    monkeypatch.setattr(middleware, "_resolve_and_look_at_limit", fail)
    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
