"""With events.enabled off, event streams are refused with EVENTS_DISABLED instead of staying silent."""

from __future__ import annotations

import uuid

import pytest

from pagemill import db
from pagemill.jobs import repository as repo
from pagemill.settings import get_settings
from tests.support.factories import make_job
from tests.unit.api.conftest import TestClient


@pytest.fixture
def job_id(api_key: str) -> str:
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id))
    return job_id


def test_streams_are_refused_when_events_are_off(
    client: TestClient, api_key: str, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings().events, "enabled", False)
    headers = {"Authorization": f"Bearer {api_key}"}
    for path in (f"/api/v1/jobs/{job_id}/events", "/api/v1/events"):
        response = client.get(path, headers=headers)
        assert response.status_code == 409, path
        assert response.json()["error"]["code"] == "EVENTS_DISABLED"
        assert response.headers["X-Request-ID"]
    with client.websocket_connect(f"/api/v1/jobs/{job_id}/ws", headers=headers) as socket:
        message = socket.receive()
    assert message["type"] == "websocket.close" and message["code"] == 1008
    assert message["reason"].startswith("EVENTS_DISABLED")


def test_with_events_on_the_stream_checks_its_parameters_instead(client: TestClient, api_key: str) -> None:
    response = client.get(
        "/api/v1/events", headers={"Authorization": f"Bearer {api_key}"}, params={"types": "nope"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
