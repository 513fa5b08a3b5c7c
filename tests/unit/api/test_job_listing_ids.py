"""GET /api/v1/jobs?id=…&id=…: the jobs a client follows, in one request (the backfill follower's way)."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from pagemill import db
from pagemill.jobs import repository as jobs_repo
from pagemill.models import DEFAULT_TENANT
from pagemill.tenancy.repository import ensure_tenant
from tests.support.factories import make_job


def _jobs(count: int, tenant: str = DEFAULT_TENANT) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with db.session_scope() as session:
        ensure_tenant(session, tenant, "enterprise")
        for job_id in ids:
            jobs_repo.add_job(session, make_job(job_id, tenant_id=tenant))
    return ids


def test_only_the_named_jobs_of_the_tenant_are_listed(client: TestClient, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    mine = _jobs(3)
    theirs = _jobs(1, tenant="someone-else")
    # Any UUID spelling, as GET /jobs/{id}; another tenant's job and a non-UUID match nothing.
    asked = [mine[0].upper(), mine[1].replace("-", ""), theirs[0], "not-a-job"]
    response = client.get("/api/v1/jobs", params={"id": asked}, headers=auth)
    assert response.status_code == 200, response.text
    assert sorted(item["id"] for item in response.json()["items"]) == sorted(mine[:2])
    everything = client.get("/api/v1/jobs", headers=auth).json()["items"]
    assert {item["id"] for item in everything} == set(mine)


def test_too_many_ids_or_a_long_one_is_a_validation_error(client: TestClient, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    ids = [str(uuid.uuid4()) for _ in range(101)]
    too_many = client.get("/api/v1/jobs", params={"id": ids}, headers=auth)
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "VALIDATION_ERROR"
    assert too_many.json()["error"]["details"]["field"] == "id"
    long = client.get("/api/v1/jobs", params={"id": "x" * 65}, headers=auth)
    assert long.status_code == 422 and long.json()["error"]["code"] == "VALIDATION_ERROR", long.text
