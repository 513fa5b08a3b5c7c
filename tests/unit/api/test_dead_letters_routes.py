"""The admin dead letter routes in process: admin scope, listing, reading, replay and its refusals, and the
bulk replay's own rate limit."""

from __future__ import annotations

import uuid

import pytest

from pagemill import db
from pagemill.errors import WorkerCrashed
from pagemill.jobs import page_work, processing
from pagemill.jobs import repository as repo
from pagemill.models import DEFAULT_TENANT, JobState
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy import service as tenancy
from pagemill.tenancy.principal import ADMIN_SCOPE, Actor
from tests.support.factories import make_job
from tests.unit.api.conftest import TestClient

BASE = "/api/v1/admin/dead-letters"
BULK = "/api/v1/admin/dead-letter-replays"

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture
def admin(api_key: str) -> dict[str, str]:
    """Headers of an admin key of the default tenant."""
    with db.session_scope() as session:
        _, secret = tenancy.create_key(
            session,
            tenant_id=DEFAULT_TENANT,
            tier="enterprise",
            actor=Actor(subject="test"),
            name="admin",
            scopes=[ADMIN_SCOPE],
        )
    return {"Authorization": f"Bearer {secret}"}


def crashed_job() -> str:
    """A one-page job whose page crashed its worker for good (and its original stored); its id."""
    job_id = str(uuid.uuid4())
    get_blob_store().put_bytes(f"jobs/{job_id}/source", b"%PDF-1.4 stand-in original")
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id, state=JobState.RUNNING))
        repo.set_planned(session, job_id, 1, [0])
    page_work._save(job_id, None, [(0, None, WorkerCrashed(attempts=3))])
    processing.finalize_job(job_id)
    return job_id


def test_dead_letters_need_the_admin_scope(client: TestClient, api_key: str) -> None:
    response = client.get(BASE, headers={"Authorization": f"Bearer {api_key}"})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "FORBIDDEN")
    assert client.get(BASE).status_code == 401


def test_list_read_replay_and_refuse(client: TestClient, admin: dict[str, str]) -> None:
    job_id = crashed_job()
    listed = client.get(BASE, headers=admin, params={"category": "crash", "state": "open"})
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["job_id"], item["pages"], item["tenant"]) == (job_id, [1], DEFAULT_TENANT)
    assert "traceback" not in item and listed.json()["next_cursor"] is None
    assert client.get(BASE, headers=admin, params={"category": "engine"}).json()["items"] == []
    assert client.get(BASE, headers=admin, params={"category": "poison"}).status_code == 422

    detail = client.get(f"{BASE}/{item['id']}", headers=admin)
    assert detail.status_code == 200 and detail.json()["traceback"] is None  # a crash leaves none
    missing = client.get(f"{BASE}/{uuid.uuid4()}", headers=admin)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "NOT_FOUND")

    replayed = client.post(f"{BASE}/{item['id']}/replay", headers=admin)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["state"] == "replayed"
    assert replayed.json()["replayed_by"].startswith("key:")
    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None and job.state == JobState.RUNNING

    again = client.post(f"{BASE}/{item['id']}/replay", headers=admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "REPLAY_NOT_ALLOWED"
    assert again.json()["error"]["details"]["reason"] == "replayed"


def test_bulk_replay_is_bounded_and_rate_limited_apart(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings().dead_letters, "bulk_replay_rate_limit", "2/minute")
    monkeypatch.setattr(get_settings().dead_letters, "bulk_replay_max", 2)
    jobs = [crashed_job() for _ in range(3)]

    first = client.post(BULK, headers=admin, json={"category": "crash", "limit": 50})
    assert first.status_code == 202, first.text
    assert (first.json()["replayed"], first.json()["remaining"], first.json()["skipped"]) == (2, 1, [])
    second = client.post(BULK, headers=admin, json={"category": "crash"})
    assert (second.json()["replayed"], second.json()["remaining"]) == (1, 0)
    assert set(first.json()["dead_letter_ids"]) | set(second.json()["dead_letter_ids"]) == {
        row["id"] for row in client.get(BASE, headers=admin, params={"state": "replayed"}).json()["items"]
    }
    assert {row["job_id"] for row in client.get(BASE, headers=admin).json()["items"]} == set(jobs)

    third = client.post(BULK, headers=admin, json={"category": "crash"})
    assert third.status_code == 429 and third.json()["error"]["code"] == "RATE_LIMITED"
    assert int(third.headers["Retry-After"]) >= 1
    assert client.get(BASE, headers=admin).status_code == 200, "other admin requests are not held back"
