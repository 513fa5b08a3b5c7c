"""Multi-tenancy over HTTP, distributed mode: keys, tenant isolation, admin scope, rate limits, quotas, tier
limits and the audit log, with two API processes sharing one Postgres and one Redis.

Every test makes its own tenants (unique names), so tests never share a budget, a quota or a job list.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pagemill.tenancy.keys import generate_key
from tests.e2e.stack import FINAL_STATES, Stack, create_key, running_stack
from tests.support import documents
from tests.support.services import S3Server, distributed_env, pagemill_api

pytestmark = pytest.mark.e2e

FREE_RATE_PER_MINUTE = 5
FREE_DOCUMENTS_PER_DAY = 3
FREE_MAX_FILE_BYTES = 20_000
FREE_MAX_PAGES = 2
TIER_ENV = {
    "PAGEMILL_TIERS__FREE__RATE_LIMIT": f"{FREE_RATE_PER_MINUTE}/minute",
    "PAGEMILL_TIERS__FREE__DOCUMENTS_PER_DAY": str(FREE_DOCUMENTS_PER_DAY),
    "PAGEMILL_TIERS__FREE__MAX_FILE_BYTES": str(FREE_MAX_FILE_BYTES),
    "PAGEMILL_TIERS__FREE__MAX_PAGES": str(FREE_MAX_PAGES),
}
WWW_AUTHENTICATE = 'Bearer realm="pagemill"'
LOCALHOST = "127.0.0.1"

ClientFactory = Callable[..., httpx.Client]


@dataclass
class Tenancy:
    """The module's stack (API 1, worker, admin client of tenant ``e2e``) and a second API process."""

    stack: Stack
    api2_url: str

    @property
    def admin(self) -> httpx.Client:
        """The stack's admin client (enterprise tier, admin scope), on API 1."""
        return self.stack.client

    def url(self, api: int) -> str:
        """Base URL of API process 1 or 2."""
        return self.stack.base_url if api == 1 else self.api2_url

    def make_key(self, tenant: str, tier: str | None = "enterprise", **fields: Any) -> dict[str, Any]:
        """Create a key through the admin API (fast: no CLI process); its JSON with the secret."""
        response = self.admin.post("/api/v1/admin/keys", json={"tenant": tenant, "tier": tier, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@pytest.fixture(scope="module")
def tenancy(pg_url: str, redis_url: str, s3: S3Server) -> Iterator[Tenancy]:
    """API 1 + worker + API 2 on one Postgres, Redis and S3, with small free-tier limits."""
    env = {**distributed_env(pg_url, redis_url, s3), **TIER_ENV}
    with running_stack(env) as stack, pagemill_api(stack.env) as (_, api2_url):
        yield Tenancy(stack=stack, api2_url=api2_url)


@pytest.fixture
def connect(tenancy: Tenancy) -> Iterator[ClientFactory]:
    """Make clients (closed after the test): ``connect(secret, api=1|2, header="bearer"|"x-api-key")``."""
    opened: list[httpx.Client] = []

    def make(secret: str | None, api: int = 1, header: str = "bearer") -> httpx.Client:
        headers: dict[str, str] = {}
        if secret is not None:
            headers = {"Authorization": f"Bearer {secret}"} if header == "bearer" else {"X-API-Key": secret}
        client = httpx.Client(base_url=tenancy.url(api), timeout=30, headers=headers)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def new_tenant(label: str) -> str:
    """A tenant id no other test (or earlier run on the same database) uses."""
    return f"{label}-{secrets.token_hex(4)}"


def request_id(label: str) -> str:
    """A fresh X-Request-ID to send."""
    return f"{label}-{uuid.uuid4().hex[:16]}"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape, with the request id of the response header; the ``error`` object."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body
    assert body["request_id"] and body["request_id"] == response.headers["x-request-id"], body
    return error


def assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    """401 UNAUTHORIZED naming the Bearer scheme."""
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == WWW_AUTHENTICATE
    return error


# Born-digital test PDFs: read their text layer only, no OCR (keeps the worker free and the file fast).
TEXT_LAYER = {"ocr_mode": "text_layer"}


def upload(
    client: httpx.Client, path: Path, *, ocr: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST a document (text layer only unless ``ocr``)."""
    with path.open("rb") as f:
        return client.post(
            "/api/v1/documents",
            files={"file": (path.name, f)},
            data={} if ocr else TEXT_LAYER,
            headers=headers,
        )


def submit_ok(
    client: httpx.Client, path: Path, *, ocr: bool = False, headers: dict[str, str] | None = None
) -> str:
    """POST a document, assert 202, return the job id."""
    response = upload(client, path, ocr=ocr, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_job(clients: Sequence[httpx.Client], job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it is final, cycling through ``clients`` (keys of one tenant: a free-tier key allows
    only a few requests a minute) and backing off from 0.1 s to 1 s."""
    deadline = time.monotonic() + timeout
    interval = 0.1
    polls = 0
    while True:
        response = clients[polls % len(clients)].get(f"/api/v1/jobs/{job_id}")
        polls += 1
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in FINAL_STATES:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout}s: {job}"
        time.sleep(interval)
        interval = min(1.0, interval * 1.5)


# --------------------------------------------------------------------------------------------------


def test_tenants_cannot_see_each_others_jobs(tenancy: Tenancy, connect: ClientFactory, docs: Path) -> None:
    owner = connect(tenancy.make_key(new_tenant("iso-a"), "enterprise")["secret"])
    other = connect(tenancy.make_key(new_tenant("iso-b"), "standard")["secret"], api=2)
    pdf = documents.make_text_pdf(docs / "private.pdf", ["Tenant alpha private text\nFor alpha eyes only."])
    job_id = submit_ok(owner, pdf)
    nobody = str(uuid.uuid4())

    def assert_hidden() -> None:
        for method, path in [
            ("GET", f"/api/v1/jobs/{job_id}"),
            ("GET", f"/api/v1/jobs/{job_id}/pages/1"),
            ("GET", f"/api/v1/jobs/{job_id}/result"),
            ("DELETE", f"/api/v1/jobs/{job_id}"),
        ]:
            error = assert_error(other.request(method, path), 404, "NOT_FOUND")
            # Indistinguishable from a job that does not exist: nothing tells B the id is taken.
            missing = assert_error(other.request(method, path.replace(job_id, nobody)), 404, "NOT_FOUND")
            assert error["message"] == missing["message"], (method, path, error, missing)
            assert "alpha" not in str(error).lower()
        listed = other.get("/api/v1/jobs")
        assert listed.status_code == 200, listed.text
        assert job_id not in {job["id"] for job in listed.json()["items"]}

    assert_hidden()  # while queued or running
    mine = owner.get("/api/v1/jobs")
    assert mine.status_code == 200 and job_id in {job["id"] for job in mine.json()["items"]}

    job = wait_job([owner], job_id)
    assert job["state"] == "succeeded", job  # B's DELETE did not cancel it
    result = owner.get(f"/api/v1/jobs/{job_id}/result", params={"format": "text"})
    assert result.status_code == 200 and "For alpha eyes only." in result.text
    page = owner.get(f"/api/v1/jobs/{job_id}/pages/1")
    assert page.status_code == 200 and "alpha" in page.json()["text"]
    assert_hidden()  # and after it succeeded


def test_requests_without_a_valid_key_are_unauthorized(tenancy: Tenancy, connect: ClientFactory) -> None:
    anonymous = connect(None, api=2)
    unknown = generate_key().secret  # well-formed, checksum right, never stored
    valid = tenancy.make_key(new_tenant("authn"), "standard")["secret"]
    bad_checksum = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    cases: list[tuple[dict[str, str], str | None]] = [
        ({}, None),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"Authorization": "Bearer not-a-key"}, "malformed"),
        ({"Authorization": f"Bearer {bad_checksum}"}, "malformed"),
        ({"X-API-Key": "not-a-key"}, "malformed"),
        ({"Authorization": f"Bearer {unknown}"}, "unknown"),
        ({"X-API-Key": unknown}, "unknown"),
    ]
    endpoints = [
        ("GET", "/api/v1/jobs"),
        ("GET", f"/api/v1/jobs/{uuid.uuid4()}"),
        ("GET", "/api/v1/usage"),
        ("POST", "/api/v1/documents"),
        ("GET", "/api/v1/admin/keys"),
    ]
    for headers, reason in cases:
        for method, path in endpoints:
            error = assert_unauthorized(anonymous.request(method, path, headers=headers))
            assert error["details"].get("reason") == reason, (headers, method, path, error)

    # The same key works as a Bearer token and in X-API-Key, on either API process.
    for api in (1, 2):
        for header in ("bearer", "x-api-key"):
            response = connect(valid, api=api, header=header).get("/api/v1/usage")
            assert response.status_code == 200, (api, header, response.text)
            assert response.json()["tier"] == "standard"

    # Health, the OpenAPI document and the docs page need no key.
    for path in ("/api/v1/health/live", "/api/v1/health/ready", "/api/v1/openapi.json", "/api/v1/docs"):
        response = anonymous.get(path)
        assert response.status_code == 200, (path, response.text)
    schemes = anonymous.get("/api/v1/openapi.json").json()["components"]["securitySchemes"]
    assert {"bearer", "apiKey"} <= set(schemes)


def test_revoked_key_is_refused_at_once_on_every_api(tenancy: Tenancy, connect: ClientFactory) -> None:
    tenant = new_tenant("revoke")
    created = tenancy.make_key(tenant, "standard")
    on_api1 = connect(created["secret"], api=1)
    on_api2 = connect(created["secret"], api=2)
    assert on_api1.get("/api/v1/usage").status_code == 200
    assert on_api2.get("/api/v1/usage").status_code == 200

    revoked = tenancy.admin.delete(f"/api/v1/admin/keys/{created['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == created["id"] and revoked.json()["revoked_at"] is not None

    # The very next request, on the other API process: no cache anywhere lets it through.
    error = assert_unauthorized(on_api2.get("/api/v1/usage"))
    assert "revoked" in error["message"].lower(), error
    assert error["details"]["reason"] == "revoked"
    assert "revoked" in assert_unauthorized(on_api1.get("/api/v1/jobs"))["message"].lower()
    assert_unauthorized(connect(created["secret"], api=2, header="x-api-key").get("/api/v1/usage"))

    # Listed only with include_revoked; revoking again is a no-op.
    active = tenancy.admin.get("/api/v1/admin/keys", params={"tenant": tenant}).json()["items"]
    assert created["id"] not in {key["id"] for key in active}
    every = tenancy.admin.get("/api/v1/admin/keys", params={"tenant": tenant, "include_revoked": True})
    assert [key["revoked_at"] is not None for key in every.json()["items"] if key["id"] == created["id"]] == [
        True
    ]
    again = tenancy.admin.delete(f"/api/v1/admin/keys/{created['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert_error(tenancy.admin.delete("/api/v1/admin/keys/key_0000000000000000"), 404, "NOT_FOUND")


def test_expired_key_is_refused(tenancy: Tenancy, connect: ClientFactory) -> None:
    lifetime_s = 4.0
    created = create_key(
        tenancy.stack.env,
        new_tenant("expiry"),
        "standard",
        extra_args=("--expires-in-days", f"{lifetime_s / 86400:.9f}"),
    )
    expires_at = datetime.fromisoformat(created["expires_at"])
    client = connect(created["secret"], api=2)
    assert datetime.now(UTC) < expires_at - timedelta(seconds=0.5), "the CLI took too long to check 'before'"
    before = client.get("/api/v1/usage")
    assert before.status_code == 200, before.text

    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.3)
    error = assert_unauthorized(client.get("/api/v1/usage"))
    assert "expired" in error["message"].lower(), error
    assert error["details"]["reason"] == "expired"
    assert_unauthorized(connect(created["secret"], api=1, header="x-api-key").get("/api/v1/jobs"))


def test_admin_endpoints_need_the_admin_scope(tenancy: Tenancy, connect: ClientFactory) -> None:
    plain_key = tenancy.make_key(new_tenant("plain"), "enterprise")
    plain = connect(plain_key["secret"], api=2)
    for method, path, body in [
        ("POST", "/api/v1/admin/keys", {"tenant": new_tenant("sneaky"), "scopes": ["admin"]}),
        ("GET", "/api/v1/admin/keys", None),
        ("DELETE", f"/api/v1/admin/keys/{plain_key['id']}", None),
        ("GET", "/api/v1/admin/audit", None),
    ]:
        error = assert_error(plain.request(method, path, json=body), 403, "FORBIDDEN")
        assert error["details"] == {"scope": "admin"}, error
    assert plain.get("/api/v1/usage").status_code == 200  # its DELETE on itself did nothing

    tenant = new_tenant("fresh")
    created = tenancy.admin.post("/api/v1/admin/keys", json={"tenant": tenant, "name": "ci"})
    assert created.status_code == 201, created.text
    key = created.json()
    secret = key["secret"]
    assert secret.startswith("pm_live_") and key["prefix"] == secret[:16]
    assert key["id"].startswith("key_") and key["tenant"] == tenant and key["name"] == "ci"
    assert key["scopes"] == [] and key["revoked_at"] is None

    listed = tenancy.admin.get("/api/v1/admin/keys", params={"tenant": tenant})
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [key["id"]]
    assert items[0]["prefix"] == key["prefix"] and "secret" not in items[0]
    assert secret not in listed.text and secret[16:] not in listed.text

    usage = connect(secret, api=2).get("/api/v1/usage")
    assert usage.status_code == 200 and usage.json()["tenant"] == tenant
    assert usage.json()["tier"] == "standard"  # a new tenant's default


def test_rate_limit_is_exact_across_api_processes(tenancy: Tenancy, connect: ClientFactory) -> None:
    tenant = new_tenant("rate")
    first = tenancy.make_key(tenant, "free")["secret"]
    second = tenancy.make_key(tenant, "free")["secret"]
    clients = [connect(first, api=1), connect(first, api=2)]

    responses = [clients[n % 2].get("/api/v1/usage") for n in range(FREE_RATE_PER_MINUTE + 3)]

    assert [r.status_code for r in responses] == [200] * FREE_RATE_PER_MINUTE + [429] * 3
    for n, ok in enumerate(responses[:FREE_RATE_PER_MINUTE]):
        assert ok.headers["x-ratelimit-limit"] == str(FREE_RATE_PER_MINUTE)
        assert ok.headers["x-ratelimit-remaining"] == str(FREE_RATE_PER_MINUTE - 1 - n), n
        assert "retry-after" not in ok.headers
        assert ok.headers["x-ratelimit-reset"].isdigit(), ok.headers  # whole Unix seconds
        # When the oldest request of the 1-minute window leaves it (slowapi adds 1 s, rounded up here).
        assert 0 < int(ok.headers["x-ratelimit-reset"]) - time.time() <= 62
    for refused in responses[FREE_RATE_PER_MINUTE:]:
        error = assert_error(refused, 429, "RATE_LIMITED")
        assert error["details"]["tier"] == "free"
        retry_after = refused.headers["retry-after"]
        assert retry_after.isdigit() and 0 < int(retry_after) <= 60, retry_after
        assert refused.headers["x-ratelimit-limit"] == str(FREE_RATE_PER_MINUTE)
        assert refused.headers["x-ratelimit-remaining"] == "0"

    # Limits are per key: the tenant's other key has its whole budget.
    other = connect(second, api=2).get("/api/v1/usage")
    assert other.status_code == 200, other.text
    assert other.headers["x-ratelimit-remaining"] == str(FREE_RATE_PER_MINUTE - 1)
    assert "retry-after" not in other.headers
    assert_error(clients[0].get("/api/v1/jobs"), 429, "RATE_LIMITED")  # one budget across routes


def test_document_quota_holds_under_a_race(tenancy: Tenancy, connect: ClientFactory, docs: Path) -> None:
    tenant = new_tenant("quota")
    racers = 20
    # One key per request: the free tier's request rate is per key, so only the quota can refuse.
    secrets_ = [tenancy.make_key(tenant, "free")["secret"] for _ in range(racers + 2)]
    pdf = documents.make_text_pdf(docs / "small.pdf", ["Quota race"]).read_bytes()

    sequential = connect(secrets_[0], api=1)
    for _ in range(FREE_DOCUMENTS_PER_DAY - 1):
        response = sequential.post("/api/v1/documents", files={"file": ("small.pdf", pdf)}, data=TEXT_LAYER)
        assert response.status_code == 202, response.text

    clients = [connect(secrets_[1 + n], api=1 + n % 2) for n in range(racers)]
    start = threading.Barrier(racers)

    def race(client: httpx.Client) -> httpx.Response:
        start.wait(timeout=30)
        return client.post("/api/v1/documents", files={"file": ("small.pdf", pdf)}, data=TEXT_LAYER)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        responses = list(pool.map(race, clients))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [429] * (racers - 1), [(r.status_code, r.text) for r in responses]
    for refused in (r for r in responses if r.status_code == 429):
        error = assert_error(refused, 429, "QUOTA_EXCEEDED")
        assert error["details"]["period"] == "day" and error["details"]["limit"] == FREE_DOCUMENTS_PER_DAY
        assert refused.headers["retry-after"].isdigit() and int(refused.headers["retry-after"]) > 0

    usage = connect(secrets_[-1], api=2).get("/api/v1/usage")
    assert usage.status_code == 200, usage.text
    day = usage.json()["day"]
    assert (day["used"], day["limit"], day["remaining"]) == (
        FREE_DOCUMENTS_PER_DAY,
        FREE_DOCUMENTS_PER_DAY,
        0,
    )
    listed = connect(secrets_[-1], api=1).get("/api/v1/jobs").json()["items"]
    assert len(listed) == FREE_DOCUMENTS_PER_DAY  # no refused request left a job behind


def test_tier_caps_file_size_and_pages(tenancy: Tenancy, connect: ClientFactory, docs: Path) -> None:
    free_tenant = new_tenant("tier-free")
    free = [connect(tenancy.make_key(free_tenant, "free")["secret"], api=1 + n % 2) for n in range(8)]
    enterprise = connect(tenancy.make_key(new_tenant("tier-ent"), "enterprise")["secret"], api=2)

    lines = "\n".join(f"Filler line number {n} to make the file large" for n in range(600))
    big = documents.make_text_pdf(docs / "big.pdf", [lines])
    assert big.stat().st_size > FREE_MAX_FILE_BYTES
    error = assert_error(upload(free[0], big), 413, "FILE_TOO_LARGE")
    assert error["details"]["max_bytes"] == FREE_MAX_FILE_BYTES, error
    assert upload(enterprise, big).status_code == 202  # enterprise files may be far larger

    three = documents.make_text_pdf(docs / "three.pdf", ["Page one", "Page two", "Page three"])
    assert three.stat().st_size <= FREE_MAX_FILE_BYTES
    free_job = submit_ok(free[0], three)
    enterprise_job = submit_ok(enterprise, three)

    failed = wait_job(free[1:], free_job)
    assert failed["state"] == "failed", failed
    assert failed["error"]["code"] == "TOO_MANY_PAGES", failed
    succeeded = wait_job([enterprise], enterprise_job)
    assert succeeded["state"] == "succeeded", succeeded
    assert succeeded["pages"]["total"] == 3

    # The refused upload took no quota; the job that failed in the worker did.
    usage = free[-1].get("/api/v1/usage").json()
    assert usage["day"]["used"] == 1 and usage["limits"]["max_pages"] == FREE_MAX_PAGES
    assert usage["limits"]["max_file_bytes"] == FREE_MAX_FILE_BYTES


def test_audit_log_records_who_did_what(tenancy: Tenancy, connect: ClientFactory, docs: Path) -> None:
    tenant = new_tenant("audit")
    ids = {name: request_id(name) for name in ("key1", "create", "cancel", "result", "key2", "revoke")}
    made = tenancy.admin.post(
        "/api/v1/admin/keys", json={"tenant": tenant}, headers={"X-Request-ID": ids["key1"]}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    client = connect(key["secret"], api=2)

    audited = documents.make_text_pdf(docs / "a.pdf", ["Audited"])
    done_id = submit_ok(client, audited, headers={"X-Request-ID": ids["create"]})
    slow = documents.make_scanned_pdf(docs / "slow.pdf", ["Slow scan one", "Slow scan two"])
    cancelled_id = submit_ok(client, slow, ocr=True)  # OCR: slow enough to cancel
    cancel = client.delete(f"/api/v1/jobs/{cancelled_id}", headers={"X-Request-ID": ids["cancel"]})
    assert cancel.status_code == 202, cancel.text
    assert wait_job([client], done_id)["state"] == "succeeded"
    result = client.get(f"/api/v1/jobs/{done_id}/result", headers={"X-Request-ID": ids["result"]})
    assert result.status_code == 200 and result.headers["x-request-id"] == ids["result"]

    second = tenancy.admin.post(
        "/api/v1/admin/keys", json={"tenant": tenant}, headers={"X-Request-ID": ids["key2"]}
    ).json()
    revoked = tenancy.admin.delete(
        f"/api/v1/admin/keys/{second['id']}", headers={"X-Request-ID": ids["revoke"]}
    )
    assert revoked.status_code == 200, revoked.text

    admin_keys = tenancy.admin.get("/api/v1/admin/keys", params={"tenant": "e2e"}).json()["items"]
    admin_id = next(k["id"] for k in admin_keys if k["prefix"] == tenancy.stack.key[:16])

    response = tenancy.admin.get("/api/v1/admin/audit", params={"tenant": tenant})
    assert response.status_code == 200, response.text
    events = response.json()["items"]
    assert {event["tenant"] for event in events} == {tenant}
    by_action_target = {(event["action"], event["target"]): event for event in events}

    expected = [
        ("job.create", done_id, f"key:{key['id']}", ids["create"]),
        ("job.cancel", cancelled_id, f"key:{key['id']}", ids["cancel"]),
        ("job.result", done_id, f"key:{key['id']}", ids["result"]),
        ("key.create", key["id"], f"key:{admin_id}", ids["key1"]),
        ("key.create", second["id"], f"key:{admin_id}", ids["key2"]),
        ("key.revoke", second["id"], f"key:{admin_id}", ids["revoke"]),
    ]
    for action, target, actor, rid in expected:
        event = by_action_target.get((action, target))
        assert event is not None, (action, target, events)
        assert event["actor"] == actor, event
        assert event["ip"] == LOCALHOST, event
        assert event["request_id"] == rid, event
        assert event["user_agent"] and "python-httpx" in event["user_agent"], event
    assert by_action_target[("job.result", done_id)]["details"] == {"format": "markdown"}
    assert by_action_target[("job.create", done_id)]["details"]["filename"] == "a.pdf"
    times = [datetime.fromisoformat(event["at"]) for event in events]
    assert times == sorted(times, reverse=True), "newest first"

    only_cancels = tenancy.admin.get("/api/v1/admin/audit", params={"tenant": tenant, "action": "job.cancel"})
    assert [(e["action"], e["target"]) for e in only_cancels.json()["items"]] == [
        ("job.cancel", cancelled_id)
    ]
