"""GET /api/v1/health: the detailed report is for admin keys only; readiness and liveness stay open."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pagemill import db
from pagemill.models import DEFAULT_TENANT
from pagemill.tenancy import service as tenancy
from pagemill.tenancy.principal import Actor


def _admin_key() -> str:
    with db.session_scope() as session:
        _, secret = tenancy.create_key(
            session,
            tenant_id=DEFAULT_TENANT,
            tier="enterprise",
            actor=Actor(subject="test"),
            name="ops",
            scopes=["admin"],
        )
    return secret


def test_the_detailed_report_needs_an_admin_key(client: TestClient, api_key: str) -> None:
    anonymous = client.get("/api/v1/health")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    not_admin = client.get("/api/v1/health", headers={"Authorization": f"Bearer {api_key}"})
    assert not_admin.status_code == 403
    assert not_admin.json()["error"]["code"] == "FORBIDDEN"
    # The probes stay open.
    assert client.get("/api/v1/health/live").status_code == 200
    assert client.get("/api/v1/health/ready").status_code == 200


def test_the_detailed_report_covers_every_part(client: TestClient) -> None:
    response = client.get("/api/v1/health", headers={"Authorization": f"Bearer {_admin_key()}"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["mode"] == "embedded"
    assert set(report["components"]) == {"database", "broker", "storage"}
    for component in report["components"].values():
        assert component["status"] == "ok"
        assert component["latency_ms"] >= 0
    assert "tesseract" in report["engines"]
    assert set(report["queues"]) == {"ingest", "cpu", "gpu", "webhooks"}
    # No worker runs here and nothing waits: every queue is empty and unserved.
    assert all(queue["depth"] == 0 and queue["workers"] == 0 for queue in report["queues"].values())
    assert report["workers"] == []
    assert report["migrations"]["up_to_date"] is True
    assert report["migrations"]["current"] in report["migrations"]["heads"]
    assert report["status"] in {"ok", "degraded"}
