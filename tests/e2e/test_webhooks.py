"""Webhooks end to end, in both modes: real API and worker processes (a worker of its own on the webhooks
queue, as `pagemill up` runs), a real HTTP receiver that verifies every request with the standardwebhooks
library, a retry schedule scaled down to fractions of a second, and egress.allow_networks opening
127.0.0.0/8 for the receiver.

Each test makes a tenant of its own, so its endpoints see only its own events.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.formats.json import JSONFormat
from tusclient import client as tus_client

from tests.e2e.stack import Stack
from tests.e2e.webhooks_stack import (
    SCHEDULE_S,
    TIMEOUT_S,
    assert_in_order,
    hooks,
    ping,
    receiver,
    register,
    settled,
    submit,
    tenant,
    wait_job,
)
from tests.support import documents
from tests.support.services import pagemill_process, wait_for_log, wait_until
from tests.support.webhook_receiver import Reply, WebhookReceiver, job_events

pytestmark = pytest.mark.e2e
# Fixtures of tests.e2e.webhooks_stack, used by name.
__all__ = ["hooks", "receiver", "tenant"]

# --------------------------------------------------------------------------------------------------
# A job's events


def test_a_jobs_events_arrive_signed_in_order_ending_succeeded(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver, docs: Path
) -> None:
    register(tenant, receiver, "/all")
    pages = register(tenant, receiver, "/pages", event_types=["job.page_completed"])
    pdf = documents.make_text_pdf(docs / "three.pdf", ["First page", "Second page", "Third page"])
    job_id = submit(hooks, tenant, pdf)
    assert wait_job(tenant, job_id)["state"] == "succeeded"

    receiver.wait_for("/all", 1, what=lambda r: r.type == "job.succeeded")
    events = job_events(receiver.received("/all"), job_id)
    assert_in_order(events)
    types = [r.type for r in events]
    assert types[:2] == ["job.queued", "job.started"] and types[-1] == "job.succeeded", types
    assert "job.page_completed" not in types  # only to endpoints that name it
    final = events[-1].json()
    assert final["source"] == f"/api/v1/jobs/{job_id}" and final["data"]["state"] == "succeeded"
    assert final["data"]["pages"] == {"total": 3, "done": 3, "failed": 0}
    assert set(final["data"]["results"]) == {"markdown", "text", "json"}
    # A valid CloudEvent, read by the cloudevents SDK.
    event = JSONFormat().read(None, events[-1].body)  # type: ignore[arg-type]
    assert event.get_type() == "com.pagemill.job.succeeded" and event.get_id() == events[-1].webhook_id

    page_events = receiver.wait_for("/pages", 3)
    assert [r.type for r in page_events] == ["job.page_completed"] * 3
    # Between them, the two endpoints got every event of the job: its sequence has no gap.
    sequences = sorted(r.json()["sequence"] for r in [*events, *page_events])
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert sorted(r.json()["data"]["page"]["number"] for r in page_events) == [1, 2, 3]
    assert all(r.verified_with == [pages["secret"]] for r in page_events)

    listed = tenant.get("/api/v1/webhooks").json()["items"]
    assert {w["url"] for w in listed} == {receiver.url("/all"), receiver.url("/pages")}
    assert all("secret" not in w for w in listed)


def test_a_cancelled_job_gets_job_cancelled_and_never_job_succeeded(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver, docs: Path
) -> None:
    register(tenant, receiver, "/cancel", event_types=["job.started", "job.succeeded", "job.cancelled"])
    texts = [f"Page number {n} of a long scan" for n in range(1, 11)]
    job_id = submit(hooks, tenant, documents.make_scanned_pdf(docs / "long-scan.pdf", texts))
    receiver.wait_for("/cancel", 1, what=lambda r: r.type == "job.started")
    assert tenant.delete(f"/api/v1/jobs/{job_id}").status_code == 202
    assert wait_job(tenant, job_id)["state"] == "cancelled"
    got = receiver.wait_for("/cancel", 1, what=lambda r: r.type == "job.cancelled")
    time.sleep(1.5)  # time for anything that should not come
    types = [r.type for r in job_events(receiver.received("/cancel"), job_id)]
    assert types == ["job.started", "job.cancelled"], types
    assert got[-1].json()["data"]["state"] == "cancelled"


def test_callback_url_gets_the_jobs_events_signed_with_the_tenants_callback_secret(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver, docs: Path
) -> None:
    pdf = documents.make_text_pdf(docs / "cb.pdf", ["Called back"])
    # No callback secret yet: refused before anything is stored.
    with pdf.open("rb") as f:
        refused = tenant.post(
            "/api/v1/documents", files={"file": ("cb.pdf", f)}, data={"callback_url": receiver.url("/cb")}
        )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "VALIDATION_ERROR", refused.text
    assert tenant.get("/api/v1/callbacks/secret").status_code == 404

    made = tenant.post("/api/v1/callbacks/secret")
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("whsec_")
    receiver.trust("/cb", secret)
    record = tenant.get("/api/v1/callbacks/secret")
    assert record.status_code == 200 and "secret" not in record.json()

    job_id = submit(hooks, tenant, pdf, callback_url=receiver.url("/cb"))
    job = wait_job(tenant, job_id)
    assert job["state"] == "succeeded" and job["callback_url"] == receiver.url("/cb")
    receiver.wait_for("/cb", 1, what=lambda r: r.type == "job.succeeded")
    events = receiver.received("/cb")
    assert_in_order(events)
    types = [r.type for r in events]
    assert types[0] == "job.queued" and types[-1] == "job.succeeded", types

    def deliveries() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = tenant.get(
            "/api/v1/callbacks/deliveries", params={"job_id": job_id}
        ).json()["items"]
        return items

    # The receiver has the last event before its delivery is recorded as succeeded (the worker records
    # the answer after it arrives): wait for the records.
    wait_until(lambda: all(d["state"] == "succeeded" for d in deliveries()), 30, "every delivery recorded")
    listed = deliveries()
    assert {d["event_id"] for d in listed} == {r.webhook_id for r in events}
    assert all(d["state"] == "succeeded" and d["url"] == receiver.url("/cb") for d in listed)
    assert all(d["webhook_id"] is None and d["attempts"][0]["status_code"] == 200 for d in listed)

    # Rotating the callback secret: the old one signs beside the new one during the grace.
    rotated = tenant.post("/api/v1/callbacks/secret")
    assert rotated.status_code == 200 and rotated.json()["previous_secret_expires_at"] is not None
    receiver.trust("/cb", secret, rotated.json()["secret"])
    second = submit(hooks, tenant, pdf, callback_url=receiver.url("/cb"), cache="false")
    wait_job(tenant, second)
    receiver.wait_for("/cb", 2, what=lambda r: r.type == "job.succeeded")
    again = job_events(receiver.received("/cb"), second)
    assert again and all(len(r.verified_with) == 2 for r in again)


# --------------------------------------------------------------------------------------------------
# Delivery behaviour, on test pings


def test_a_tus_upload_carries_its_callback_url_in_upload_metadata(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver, docs: Path
) -> None:
    """tuspy sends callback_url in Upload-Metadata; the job made at the last byte calls it back, signed."""
    made = tenant.post("/api/v1/callbacks/secret")
    assert made.status_code == 201, made.text
    receiver.trust("/tus-cb", made.json()["secret"])
    pdf = documents.make_text_pdf(docs / "tus-cb.pdf", ["Called back after a tus upload"])
    key = tenant.headers["Authorization"]
    client = tus_client.TusClient(f"{hooks.base_url}/api/v1/uploads", headers={"Authorization": key})
    with pdf.open("rb") as stream:
        uploader = client.uploader(
            file_stream=stream,
            chunk_size=1 << 20,
            metadata={"filename": "tus-cb.pdf", "callback_url": receiver.url("/tus-cb")},
        )
        uploader.upload()
    assert uploader.request is not None
    job_id = uploader.request.response_headers["pagemill-job-id"]
    job = wait_job(tenant, job_id)
    assert job["state"] == "succeeded" and job["callback_url"] == receiver.url("/tus-cb")
    receiver.wait_for("/tus-cb", 1, what=lambda r: r.type == "job.succeeded")
    events = receiver.received("/tus-cb")
    assert_in_order(events)
    assert {r.json()["subject"] for r in events} == {job_id} and all(r.verified for r in events)


def test_500_then_200_is_retried_with_the_same_webhook_id(
    tenant: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(tenant, receiver, "/flaky")
    receiver.script("/flaky", Reply(500, body=b"boom"), Reply(200))
    sent = ping(tenant, hook["id"])
    first, second = receiver.wait_for("/flaky", 2)
    assert first.webhook_id == second.webhook_id == sent["event_id"]
    assert first.verified and second.verified and first.type == "webhook.ping"
    waited = second.at - first.at
    assert SCHEDULE_S[1] * 0.9 - 0.05 <= waited < 5, waited
    final = settled(tenant, hook["id"], sent["id"])
    assert final["state"] == "succeeded" and final["attempt_count"] == 2
    assert [a["status_code"] for a in final["attempts"]] == [500, 200]
    assert final["attempts"][0]["response"] == "boom" and final["attempts"][0]["error"] == "status 500"
    assert all(a["latency_ms"] is not None for a in final["attempts"])


def test_a_receiver_that_times_out_is_retried(tenant: httpx.Client, receiver: WebhookReceiver) -> None:
    hook = register(tenant, receiver, "/slow")
    receiver.script("/slow", Reply(200, delay_s=TIMEOUT_S + 2))
    sent = ping(tenant, hook["id"])
    final = settled(tenant, hook["id"], sent["id"])
    assert final["state"] == "succeeded", final
    first, second = final["attempts"]
    assert first["status_code"] is None and "timeout" in first["error"], first
    assert second["status_code"] == 200
    assert len({r.webhook_id for r in receiver.received("/slow")}) == 1


def test_a_redirect_is_not_followed(tenant: httpx.Client, receiver: WebhookReceiver) -> None:
    hook = register(tenant, receiver, "/moved")
    receiver.script("/moved", Reply(302, headers={"Location": receiver.url("/elsewhere")}), Reply(200))
    sent = ping(tenant, hook["id"])
    final = settled(tenant, hook["id"], sent["id"])
    assert [a["status_code"] for a in final["attempts"]] == [302, 200]
    assert "not followed" in final["attempts"][0]["error"]
    assert receiver.received("/elsewhere") == []


def test_429_retry_after_is_honoured(tenant: httpx.Client, receiver: WebhookReceiver) -> None:
    hook = register(tenant, receiver, "/busy")
    receiver.script("/busy", Reply(429, headers={"Retry-After": "3"}), Reply(200))
    sent = ping(tenant, hook["id"])
    first, second = receiver.wait_for("/busy", 2, timeout=30)
    # The schedule says 0.5 s; the receiver asked for 3 s (the header is whole seconds).
    assert second.at - first.at >= 2.9, second.at - first.at
    assert settled(tenant, hook["id"], sent["id"])["state"] == "succeeded"


def test_410_disables_the_endpoint_and_records_webhook_disabled(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver, docs: Path
) -> None:
    register(tenant, receiver, "/watch", event_types=["webhook.disabled", "job.succeeded"])
    gone = register(tenant, receiver, "/gone")
    receiver.script("/gone", Reply(410))
    sent = ping(tenant, gone["id"])
    final = settled(tenant, gone["id"], sent["id"])
    assert final["state"] == "dead" and final["attempt_count"] == 1, final
    endpoint = tenant.get(f"/api/v1/webhooks/{gone['id']}").json()
    assert endpoint["enabled"] is False and endpoint["disabled_reason"] == "gone"
    (disabled,) = receiver.wait_for("/watch", 1, what=lambda r: r.type == "webhook.disabled")
    assert disabled.verified and disabled.json()["data"]["webhook_id"] == gone["id"]
    assert disabled.json()["data"]["reason"] == "gone"

    # No more attempts: a job's events reach the watcher, never the disabled endpoint.
    job_id = submit(hooks, tenant, documents.make_text_pdf(docs / "after-410.pdf", ["after"]))
    wait_job(tenant, job_id)
    receiver.wait_for("/watch", 1, what=lambda r: r.type == "job.succeeded")
    time.sleep(1)
    assert len(receiver.received("/gone")) == 1

    # Enabled again, it receives events again.
    assert tenant.patch(f"/api/v1/webhooks/{gone['id']}", json={"enabled": True}).json()["enabled"] is True
    job_id = submit(hooks, tenant, documents.make_text_pdf(docs / "enabled.pdf", ["again"]))
    wait_job(tenant, job_id)
    receiver.wait_for("/gone", 1, what=lambda r: r.type == "job.succeeded")


def test_secret_rotation_signs_with_both_secrets_during_the_grace(
    tenant: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(tenant, receiver, "/rotate")
    rotated = tenant.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != hook["secret"] and rotated.json()["previous_secret_expires_at"] is not None
    receiver.trust("/rotate", hook["secret"], new)
    ping(tenant, hook["id"])
    (got,) = receiver.wait_for("/rotate", 1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert sorted(got.verified_with) == sorted([hook["secret"], new])


def test_deliveries_are_listed_replayed_and_replayed_in_bulk(
    tenant: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(tenant, receiver, "/down")
    since = datetime.now(UTC).isoformat()
    receiver.script("/down", *[Reply(503, body=b"down") for _ in range(2 * len(SCHEDULE_S))])
    first, second = ping(tenant, hook["id"]), ping(tenant, hook["id"])
    dead = [settled(tenant, hook["id"], d["id"]) for d in (first, second)]
    assert all(d["state"] == "dead" and d["attempt_count"] == len(SCHEDULE_S) for d in dead), dead
    assert all(a["status_code"] == 503 for d in dead for a in d["attempts"])

    page = tenant.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries", params={"limit": 1, "state": "dead"}
    ).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = tenant.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries", params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {first["id"], second["id"]}

    # The receiver is back: one replayed by hand, then the rest in bulk.
    replayed = tenant.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{first['id']}/replay")
    assert replayed.status_code == 202 and replayed.json()["state"] == "pending"
    one = settled(tenant, hook["id"], first["id"])
    assert one["state"] == "succeeded" and one["attempt_count"] == len(SCHEDULE_S) + 1
    bulk = tenant.post(f"/api/v1/webhooks/{hook['id']}/replay-failed", json={"since": since})
    assert bulk.status_code == 202 and bulk.json()["delivery_ids"] == [second["id"]], bulk.text
    assert settled(tenant, hook["id"], second["id"])["state"] == "succeeded"
    ids = [r.webhook_id for r in receiver.received("/down")]
    assert set(ids) == {first["event_id"], second["event_id"]}  # the same webhook-id on every attempt


def test_urls_the_ssrf_guard_refuses_are_not_registered(tenant: httpx.Client) -> None:
    # 127.0.0.0/8 is open in this stack (egress.allow_networks); metadata never, other private ranges not.
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ):
        response = tenant.post("/api/v1/webhooks", json={"url": url})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["code"] == "URL_FORBIDDEN", (url, response.text)
    assert tenant.get("/api/v1/webhooks").json()["items"] == []
    made = tenant.post("/api/v1/callbacks/secret")
    assert made.status_code == 201
    refused = tenant.post(
        "/api/v1/documents",
        json={"url": "https://example.com/a.pdf", "callback_url": "http://169.254.169.254/"},
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "URL_FORBIDDEN", refused.text


def test_another_tenants_webhooks_are_not_found(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(tenant, receiver, "/mine")
    other_key = hooks.create_key(f"wh-{secrets.token_hex(4)}")["secret"]
    with hooks.client_for(str(other_key)) as other:
        for method, path in (
            ("GET", f"/api/v1/webhooks/{hook['id']}"),
            ("PATCH", f"/api/v1/webhooks/{hook['id']}"),
            ("DELETE", f"/api/v1/webhooks/{hook['id']}"),
            ("POST", f"/api/v1/webhooks/{hook['id']}/test"),
            ("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret"),
            ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries"),
        ):
            response = other.request(method, path, json={} if method == "PATCH" else None)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "NOT_FOUND"
    assert tenant.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert tenant.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


# --------------------------------------------------------------------------------------------------
# At least once


def test_a_delivery_survives_kill_9_of_the_webhook_worker(
    hooks: Stack, tenant: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(tenant, receiver, "/held")
    hold = threading.Event()
    receiver.script("/held", Reply(200, hold=hold))
    sent = ping(tenant, hook["id"])
    receiver.wait_for("/held", 1, timeout=30)
    # The worker waits for the answer (webhooks.timeout_s): killed now, mid-delivery.
    assert hooks.webhook_worker is not None
    hooks.webhook_worker.kill9()
    hold.set()
    # A new webhooks worker (as a supervisor would start); the fixture stops it at the end.
    replacement = pagemill_process(
        [
            "worker",
            "--queues",
            "webhooks",
            "--concurrency",
            "2",
            "--hostname",
            f"wh-{secrets.token_hex(3)}@%h",
        ],
        hooks.env,
        name="webhooks worker (replacement)",
    )
    hooks.webhook_worker = replacement
    wait_for_log(replacement, r"\bready\.", 60)
    first, second = receiver.wait_for("/held", 2, timeout=60)
    assert first.webhook_id == second.webhook_id == sent["event_id"]
    assert second.verified
    final = settled(tenant, hook["id"], sent["id"])
    # The killed attempt never got to record itself; the one after it did.
    assert final["state"] == "succeeded" and final["attempt_count"] == 2, final
    assert [a["number"] for a in final["attempts"]] == [2]
