"""The webhook e2e stack and helpers: a stack whose retry schedule is scaled down to fractions of a second,
with egress.allow_networks opening 127.0.0.0/8 for the test receiver, and a few typed calls of the API."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import services
from tests.support.services import S3Server, distributed_env, embedded_env, wait_until
from tests.support.webhook_receiver import Received, WebhookReceiver

TIMEOUT_S = 2.0
SCHEDULE_S = [0, 0.5, 0.5, 0.5]
WEBHOOK_ENV = {
    "PAGEMILL_EGRESS__ALLOW_NETWORKS": '["127.0.0.0/8"]',
    "PAGEMILL_EGRESS__DNS_TIMEOUT_S": "1",
    "PAGEMILL_WEBHOOKS__RETRY_SCHEDULE_S": str(SCHEDULE_S),
    "PAGEMILL_WEBHOOKS__RETRY_JITTER": "0.1",
    "PAGEMILL_WEBHOOKS__TIMEOUT_S": str(TIMEOUT_S),
    "PAGEMILL_WEBHOOKS__ROUTING_CACHE_S": "0",
    "PAGEMILL_WEBHOOKS__REDELIVER_AFTER_S": "1",
    "PAGEMILL_WEBHOOKS__ROTATION_GRACE_S": "600",
}


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def hooks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with the webhook settings above; distributed on a database, Redis and bucket of its own."""
    own = contextlib.ExitStack()
    if request.param == "embedded":
        env = embedded_env(tmp_path_factory.mktemp("webhooks-embedded"))
    else:
        s3: S3Server = request.getfixturevalue("s3")
        pg_url = own.enter_context(services.postgres_url())
        redis = own.enter_context(services.redis_server())
        env = distributed_env(pg_url, redis.url, s3, bucket="pagemill-webhooks")
    with own, running_stack({**env, **WEBHOOK_ENV}, webhooks=True) as running:
        original = running.webhook_worker
        try:
            yield running
        finally:
            # The kill -9 test replaces the stack's webhooks worker: stop the replacement too.
            if running.webhook_worker is not None and running.webhook_worker is not original:
                running.webhook_worker.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1."""
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def tenant(hooks: Stack) -> Iterator[httpx.Client]:
    """A client of a new tenant of its own."""
    key = hooks.create_key(f"wh-{secrets.token_hex(4)}")["secret"]
    with hooks.client_for(str(key)) as client:
        yield client


def register(client: httpx.Client, receiver: WebhookReceiver, path: str, **fields: Any) -> dict[str, Any]:
    """Register ``path`` of the receiver as an endpoint; its JSON (with its secret, which the receiver
    trusts)."""
    response = client.post("/api/v1/webhooks", json={"url": receiver.url(path), **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.trust(path, created["secret"])
    return created


def ping(client: httpx.Client, webhook_id: str) -> dict[str, Any]:
    """Send a test ping; the delivery."""
    response = client.post(f"/api/v1/webhooks/{webhook_id}/test")
    assert response.status_code == 202, response.text
    delivery: dict[str, Any] = response.json()
    assert delivery["event_type"] == "webhook.ping" and delivery["state"] == "pending"
    return delivery


def delivery(client: httpx.Client, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """GET one delivery of an endpoint."""
    response = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def settled(client: httpx.Client, webhook_id: str, delivery_id: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until a delivery is succeeded or dead (and no attempt is under way); it."""
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = [delivery(client, webhook_id, delivery_id)]
        return found[0]["state"] in ("succeeded", "dead")

    wait_until(done, timeout, f"delivery {delivery_id} to settle", interval=0.1)
    return found[0]


def submit(stack: Stack, client: httpx.Client, path: Path, **fields: str) -> str:
    """Submit a document as ``client``; the job id."""
    with path.open("rb") as f:
        response = client.post("/api/v1/documents", files={"file": (path.name, f)}, data=fields)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_job(client: httpx.Client, job_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll a job until it is final."""
    found: list[dict[str, Any]] = []

    def final() -> bool:
        found[:] = [client.get(f"/api/v1/jobs/{job_id}").json()]
        return found[0]["state"] in ("succeeded", "failed", "cancelled", "expired")

    wait_until(final, timeout, f"job {job_id} to end", interval=0.1)
    return found[0]


def assert_in_order(events: list[Received]) -> None:
    """Every request verified, one per event, arriving in sequence order."""
    assert all(r.verified for r in events), [r.verify_errors for r in events]
    sequences = [r.json()["sequence"] for r in events]
    assert sequences == sorted(sequences), sequences
    assert len({r.webhook_id for r in events}) == len(events), "an event was delivered twice"
    for r in events:
        assert r.webhook_id == r.json()["id"]
        assert r.headers["content-type"] == "application/json"
