"""Retention (issue 10): originals, then results, expire per tier and the sweeper deletes their blobs; a
purge deletes a finished job's data at once; results download through a short-lived URL (a presigned S3
URL, or a signed API URL on the local backend). Embedded and distributed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from tests.e2e.conftest import LIFECYCLE_LINK_TTL_S
from tests.e2e.stack import Stack
from tests.support import documents

pytestmark = pytest.mark.e2e

LINK_TTL_S = LIFECYCLE_LINK_TTL_S


def stored_keys(stack: Stack, job_id: str) -> set[str]:
    """The blob keys stored under the job (``source``, ``result.md``, ...), read from the store itself."""
    env = stack.env
    if env.get("PAGEMILL_STORAGE__BACKEND") != "s3":
        folder = Path(env["PAGEMILL_DATA_DIR"]) / "blobs" / "jobs" / job_id
        return {path.name for path in folder.iterdir()} if folder.exists() else set()
    client = boto3.client(
        "s3",
        endpoint_url=env["PAGEMILL_STORAGE__S3_ENDPOINT_URL"],
        region_name=env["PAGEMILL_STORAGE__S3_REGION"],
        aws_access_key_id=env["PAGEMILL_STORAGE__S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["PAGEMILL_STORAGE__S3_SECRET_ACCESS_KEY"],
    )
    listed = client.list_objects_v2(Bucket=env["PAGEMILL_STORAGE__S3_BUCKET"], Prefix=f"jobs/{job_id}/")
    return {obj["Key"].rsplit("/", 1)[-1] for obj in listed.get("Contents", [])}


def poll(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    """``check()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)
    return value


def test_originals_then_results_expire_by_tier(lifecycle_stack: Stack, docs: Path) -> None:
    standard = lifecycle_stack.create_key("retention-standard", tier="standard")
    pdf = documents.make_text_pdf(docs / "kept.pdf", ["Retention page one", "Retention page two"])
    with lifecycle_stack.client_for(standard["secret"]) as client, pdf.open("rb") as f:
        job_id = client.post("/api/v1/documents", files={"file": (pdf.name, f)}).json()["id"]
        done = poll(
            "job finished",
            lambda: (
                (j := client.get(f"/api/v1/jobs/{job_id}").json())["state"] in ("succeeded", "failed") and j
            ),
        )
        assert done["state"] == "succeeded", done
        # The original is kept 1 s: on a busy machine it may be gone already when the job is seen finished.
        assert "result.md" in stored_keys(lifecycle_stack, job_id)

        # The original goes first; the results stay readable.
        job = poll(
            "original deleted",
            lambda: (j := client.get(f"/api/v1/jobs/{job_id}").json())["original_deleted_at"] and j,
        )
        assert job["state"] == "succeeded"
        result = client.get(f"/api/v1/jobs/{job_id}/result", params={"format": "text"})
        assert result.status_code == 200 and "Retention page two" in result.text
        assert "source" not in stored_keys(lifecycle_stack, job_id)

        # Then the results: the job ends expired, its result and pages answer 410.
        job = poll(
            "job expired",
            lambda: (j := client.get(f"/api/v1/jobs/{job_id}").json())["state"] == "expired" and j,
        )
        assert job["expired_at"] and job["purged"] is False
        assert job["pages"]["done"] == 2  # the history stays
        gone = client.get(f"/api/v1/jobs/{job_id}/result")
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "RESULT_EXPIRED"
        assert client.get(f"/api/v1/jobs/{job_id}/pages/1").status_code == 410
        assert stored_keys(lifecycle_stack, job_id) == set()
        listed = client.get("/api/v1/jobs", params={"state": "expired"}).json()["items"]
        assert [item["id"] for item in listed] == [job_id]


def test_purge_deletes_a_finished_job_at_once(lifecycle_stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "erase.pdf", ["Personal data to erase"])
    job_id = lifecycle_stack.wait(lifecycle_stack.submit_ok(pdf))["id"]
    assert stored_keys(lifecycle_stack, job_id)

    other = lifecycle_stack.create_key("retention-other-tenant")
    with lifecycle_stack.client_for(other["secret"]) as client:
        assert client.delete(f"/api/v1/jobs/{job_id}", params={"purge": "true"}).status_code == 404

    purged = lifecycle_stack.client.delete(f"/api/v1/jobs/{job_id}", params={"purge": "true"})
    assert purged.status_code == 200, purged.text
    body = purged.json()
    assert body["state"] == "expired" and body["purged"] is True and body["expired_at"]
    assert stored_keys(lifecycle_stack, job_id) == set()
    for path in (f"/api/v1/jobs/{job_id}/result", f"/api/v1/jobs/{job_id}/pages/1"):
        response = lifecycle_stack.client.get(path)
        assert response.status_code == 410 and response.json()["error"]["code"] == "RESULT_EXPIRED"
    # Cancelling an expired job is a conflict; purging it again is harmless.
    assert lifecycle_stack.client.delete(f"/api/v1/jobs/{job_id}").status_code == 409
    again = lifecycle_stack.client.delete(f"/api/v1/jobs/{job_id}", params={"purge": "true"})
    assert again.status_code == 200 and again.json()["purged"] is True
    audit = lifecycle_stack.client.get("/api/v1/admin/audit", params={"action": "job.purge"}).json()
    assert job_id in {event["target"] for event in audit["items"]}


def test_result_download_by_redirect(lifecycle_stack: Stack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "linked.pdf", ["Downloaded through a link"])
    job_id = lifecycle_stack.wait(lifecycle_stack.submit_ok(pdf))["id"]
    streamed = lifecycle_stack.result(job_id, "json")
    assert streamed.status_code == 200

    response = lifecycle_stack.client.get(
        f"/api/v1/jobs/{job_id}/result", params={"format": "json", "redirect": "true"}
    )
    assert response.status_code == 307, response.text
    location = response.headers["location"]
    s3 = lifecycle_stack.env.get("PAGEMILL_STORAGE__BACKEND") == "s3"
    if s3:
        assert location.startswith(lifecycle_stack.env["PAGEMILL_STORAGE__S3_ENDPOINT_URL"])
    else:
        assert location.startswith("/api/v1/result-links/")
    # Followed by a client with no API key at all.
    with httpx.Client(base_url=lifecycle_stack.base_url, timeout=30) as plain:
        downloaded = plain.get(location)
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == streamed.content
        assert downloaded.headers["content-type"].startswith("application/json")
        if not s3:
            tampered = location.replace(f"/{job_id}/json", f"/{job_id}/text")
            assert plain.get(tampered).status_code == 403
        # Links expire. The S3 test server (moto) does not check presigned expiry: that the URL asks for
        # the configured lifetime is what can be seen of it there.
        if s3:
            assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == [str(LINK_TTL_S)]
        else:
            poll("link expired", lambda: plain.get(location).status_code != 200, timeout=LINK_TTL_S + 15)
            expired = plain.get(location)
            assert expired.status_code == 410 and expired.json()["error"]["code"] == "LINK_EXPIRED"
