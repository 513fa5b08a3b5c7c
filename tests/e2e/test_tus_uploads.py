"""Resumable uploads (tus 1.0) end to end, in both modes: real tus clients (tuspy, and tus-js-client under
node) upload a 50 MiB PDF in 7 MiB chunks, the connection is dropped mid-chunk and the upload resumed, the
stored original hashes equal to the source, the job it becomes succeeds with the right text; every tus
status code; nothing left after DELETE or expiry (no object, no open S3 multipart upload); two API
processes serving alternate chunks of one upload (distributed)."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tusclient import client as tus_client

from tests.e2e.stack import Stack, running_stack
from tests.support import documents
from tests.support import tus_client as tus
from tests.support.services import S3Server, distributed_env, embedded_env, pagemill_api

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
CHUNK = 7 * MIB
BIG = 50 * MIB
TEXT = "Pagemill resumable upload"
BUCKET = "pagemill-test"
# Room for the 50 MiB document (the shared test limits cap uploads at 8 MiB).
TUS_LIMITS = {"PAGEMILL_LIMITS__MAX_UPLOAD_BYTES": str(64 * MIB)}


@dataclass
class TusStack:
    """A running stack and what the tests need to look behind it."""

    stack: Stack
    mode: str
    database_url: str
    data_dir: Path | None
    s3: S3Server | None

    @property
    def endpoint(self) -> str:
        return f"{self.stack.base_url}/api/v1/uploads"

    def stored_sha256(self, job_id: str) -> str:
        """SHA-256 of the job's stored original."""
        if self.s3 is not None:
            return tus.s3_sha256(self.s3, BUCKET, f"jobs/{job_id}/source")
        assert self.data_dir is not None
        return tus.sha256_file(self.data_dir / "blobs" / "jobs" / job_id / "source")

    def leftovers(self, upload_id: str, job_id: str) -> list[str]:
        """Everything storage still holds for an upload: objects, open multipart uploads, files."""
        if self.s3 is not None:
            found = []
            for prefix in (f"jobs/{job_id}/", f"uploads/{upload_id}/"):
                found += tus.s3_keys(self.s3, BUCKET, prefix)
                found += [f"multipart:{key}" for key in tus.s3_open_multipart(self.s3, BUCKET, prefix)]
            return found
        assert self.data_dir is not None
        blobs = self.data_dir / "blobs"
        return [
            str(path) for path in (blobs / "jobs" / job_id, blobs / "uploads" / upload_id) if path.exists()
        ]

    def job_id_of(self, upload_id: str) -> str:
        """The job id an upload reserved (read from the database, as an operator would)."""
        return str(self._scalar("SELECT job_id FROM uploads WHERE id = :id", upload_id))

    def is_locked(self, upload_id: str) -> bool:
        """Whether a PATCH holds the upload's lock."""
        return bool(self._scalar("SELECT lock_token IS NOT NULL FROM uploads WHERE id = :id", upload_id))

    def _scalar(self, sql: str, upload_id: str) -> Any:
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), {"id": upload_id}).scalar_one()
        finally:
            engine.dispose()

    def expire(self, upload_id: str) -> None:
        """Move an upload's expiry into the past (waiting 60 s for uploads.expire_after_s is too slow)."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE uploads SET expires_at = :at WHERE id = :id"),
                    {"at": datetime.now(UTC) - timedelta(seconds=1), "id": upload_id},
                )
        finally:
            engine.dispose()


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def tus_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusStack]:
    """A running Pagemill in each mode, with uploads up to 64 MiB."""
    if request.param == "embedded":
        data_dir = tmp_path_factory.mktemp("tus-embedded")
        env = {**embedded_env(data_dir), **TUS_LIMITS}
        with running_stack(env) as stack:
            yield TusStack(stack, "embedded", f"sqlite:///{data_dir / 'pagemill.sqlite3'}", data_dir, None)
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        s3: S3Server = request.getfixturevalue("s3")
        env = {**distributed_env(pg_url, request.getfixturevalue("redis_url"), s3), **TUS_LIMITS}
        with running_stack(env) as stack:
            yield TusStack(stack, "distributed", pg_url, None, s3)


@pytest.fixture(scope="module")
def big_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 50 MiB PDF (one text page, padded with incompressible bytes)."""
    return documents.make_padded_pdf(tmp_path_factory.mktemp("tus") / "big.pdf", [TEXT], BIG)


def _upload_id(path_or_url: str) -> str:
    return path_or_url.rstrip("/").rsplit("/", 1)[-1]


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    if response.request.url.path.startswith("/api/v1/uploads"):
        assert response.headers["tus-resumable"] == "1.0.0"  # tus errors too
    error: dict[str, Any] = body["error"]
    return error


def _assert_job_read(env: TusStack, job_id: str, source: Path) -> None:
    job = env.stack.wait(job_id, timeout=120)
    assert job["state"] == "succeeded", job
    expected = tus.sha256_file(source)
    assert job["sha256"] == expected
    assert job["size_bytes"] == source.stat().st_size
    assert env.stored_sha256(job_id) == expected
    text = env.stack.result(job_id, "text")
    assert text.status_code == 200, text.text
    assert TEXT in text.text


def _drop_first_chunk(env: TusStack, path: str, source: Path) -> int:
    """Send half of the first chunk and drop the connection; the offset the server kept (> 0)."""
    with source.open("rb") as f:
        chunk = f.read(CHUNK)
    tus.drop_mid_chunk(env.stack.base_url, env.stack.key, path, 0, chunk)
    kept: int = tus.wait_for(
        lambda: tus.offset_of(env.stack.client, path), 30, "the dropped PATCH's bytes to be kept"
    )
    assert 0 < kept <= CHUNK // 2
    return kept


def test_tuspy_upload_dropped_mid_chunk_resumes_and_becomes_the_job(
    tus_stack: TusStack, big_pdf: Path
) -> None:
    client = tus_client.TusClient(
        tus_stack.endpoint, headers={"Authorization": f"Bearer {tus_stack.stack.key}"}
    )
    size = big_pdf.stat().st_size
    # Streams of our own: tuspy leaves the files it opens from a path unclosed.
    with big_pdf.open("rb") as stream:
        uploader = client.uploader(
            file_stream=stream,
            chunk_size=CHUNK,
            metadata={"filename": "big.pdf", "formats": "markdown,text", "ocr_mode": "text_layer"},
            upload_checksum=True,  # sha1 of every chunk, checked by the server
        )
        url = uploader.create_url()
    _drop_first_chunk(tus_stack, urlpath(url), big_pdf)

    with big_pdf.open("rb") as stream:
        resumed = client.uploader(
            file_stream=stream, url=url, chunk_size=CHUNK, upload_checksum=True, retries=5, retry_delay=1
        )
        assert resumed.offset > 0  # tuspy asked HEAD where to go on from
        resumed.upload()
    assert resumed.request is not None
    last = resumed.request.response_headers
    assert int(last["upload-offset"]) == size
    job_id = last["pagemill-job-id"]
    assert last["location"] == f"/api/v1/jobs/{job_id}"
    _assert_job_read(tus_stack, job_id, big_pdf)
    # Nothing of the upload's own is left beside the job's files (S3: no pending part, no open upload).
    leftovers = tus_stack.leftovers(_upload_id(url), job_id)
    assert leftovers
    assert all(item.startswith(("jobs/", str(tus_stack.data_dir))) for item in leftovers), leftovers


def _gone(client: httpx.Client, path: str) -> bool:
    return tus.head(client, path).status_code == 404


def urlpath(url: str) -> str:
    """The path of an absolute URL."""
    return "/" + url.split("/", 3)[3]


def test_tus_js_client_upload_dropped_mid_chunk_resumes(tus_stack: TusStack, big_pdf: Path) -> None:
    size = big_pdf.stat().st_size
    path = tus.create_ok(tus_stack.stack.client, size, filename="big.pdf", ocr_mode="text_layer")
    _drop_first_chunk(tus_stack, path, big_pdf)
    result = tus.tus_js_upload(
        tus_stack.endpoint,
        big_pdf,
        key=tus_stack.stack.key,
        chunk_size=CHUNK,
        metadata={},
        upload_url=f"{tus_stack.stack.base_url}{path}",
    )
    assert tus.offset_of(tus_stack.stack.client, path) == big_pdf.stat().st_size
    job_id = result["jobId"]
    assert job_id, result
    _assert_job_read(tus_stack, job_id, big_pdf)


def test_tus_js_client_creates_and_uploads(tus_stack: TusStack, docs: Path) -> None:
    source = documents.make_padded_pdf(docs / "js.pdf", [TEXT], 12 * MIB)
    result = tus.tus_js_upload(
        tus_stack.endpoint,
        source,
        key=tus_stack.stack.key,
        chunk_size=CHUNK,
        metadata={"filename": "js.pdf", "formats": "text", "ocr_mode": "text_layer"},
    )
    assert result["url"].startswith(tus_stack.endpoint)
    _assert_job_read(tus_stack, result["jobId"], source)


def test_options_head_and_creation_headers(tus_stack: TusStack) -> None:
    client = tus_stack.stack.client
    options = client.options("/api/v1/uploads")
    assert options.status_code == 204
    assert options.headers["tus-version"] == "1.0.0"
    assert set(options.headers["tus-extension"].split(",")) >= {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert options.headers["tus-checksum-algorithm"].split(",") == ["sha1", "sha256"]
    assert int(options.headers["tus-max-size"]) == 64 * MIB  # the enterprise key: the server's cap
    free = tus_stack.stack.create_key(f"free-{uuid.uuid4().hex[:8]}", "free")
    with tus_stack.stack.client_for(free["secret"]) as free_client:
        assert int(free_client.options("/api/v1/uploads").headers["tus-max-size"]) == 10 * MIB
        _error(tus.create(free_client, 10 * MIB + 1), 413, "FILE_TOO_LARGE")
        # A deferred length: the bytes themselves are stopped at the tier's cap, nothing of them kept.
        deferred = free_client.post("/api/v1/uploads", headers={**tus.TUS, "Upload-Defer-Length": "1"})
        assert deferred.status_code == 201, deferred.text
        over = tus.patch(free_client, deferred.headers["location"], 0, os.urandom(10 * MIB + 1))
        _error(over, 413, "FILE_TOO_LARGE")
        assert tus.offset_of(free_client, deferred.headers["location"]) == 0

    created = tus.create(client, 1000, filename="a.pdf", formats="text")
    assert created.status_code == 201
    assert created.headers["upload-offset"] == "0"
    assert "upload-expires" in created.headers
    path = created.headers["location"]
    head = tus.head(client, path)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == "1000"
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["tus-resumable"] == "1.0.0"
    assert "filename" in head.headers["upload-metadata"]


def test_every_tus_error_status(tus_stack: TusStack) -> None:
    client = tus_stack.stack.client
    data = os.urandom(64 * 1024)
    path = tus.create_ok(client, len(data) * 2)

    # Wrong protocol version: 412 naming the supported one.
    wrong = client.patch(
        path,
        content=data,
        headers={"Tus-Resumable": "0.2.2", "Content-Type": tus.OFFSET_STREAM, "Upload-Offset": "0"},
    )
    _error(wrong, 412, "TUS_VERSION_UNSUPPORTED")
    assert wrong.headers["tus-version"] == "1.0.0"
    # Wrong Content-Type: 415.
    _error(
        tus.patch(client, path, 0, data, Content_Type="application/octet-stream"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    # Wrong offset: 409, the offset unchanged.
    _error(tus.patch(client, path, 5, data), 409, "UPLOAD_OFFSET_MISMATCH")
    # Checksum mismatch: 460, nothing kept.
    bad_sum = "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    _error(tus.patch(client, path, 0, data, Upload_Checksum=bad_sum), 460, "CHECKSUM_MISMATCH")
    assert tus.offset_of(client, path) == 0
    _error(
        tus.patch(client, path, 0, data, Upload_Checksum="md5 AAAA"), 400, "CHECKSUM_ALGORITHM_UNSUPPORTED"
    )
    # A right sha256 is kept.
    good_sum = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
    kept = tus.patch(client, path, 0, data, Upload_Checksum=good_sum)
    assert kept.status_code == 204, kept.text
    assert kept.headers["upload-offset"] == str(len(data))
    # More than Upload-Length: 413, nothing kept.
    _error(tus.patch(client, path, len(data), data + b"x"), 413, "FILE_TOO_LARGE")
    assert tus.offset_of(client, path) == len(data)

    # A PATCH in flight locks the upload: a second one is told 423 (never interleaved).
    with tus.open_patch(
        tus_stack.stack.base_url, tus_stack.stack.key, path, len(data), len(data), data[:1000]
    ):
        # Probing with PATCHes could take the lock before the open one does: watch the row instead.
        tus.wait_for(partial(tus_stack.is_locked, _upload_id(path)), 10, "the open PATCH to lock the upload")
        locked = tus.patch(client, path, len(data), data)
        _error(locked, 423, "UPLOAD_LOCKED")
        assert "retry-after" in locked.headers
    # The dropped connection kept the 1000 bytes that came (tus: resume from HEAD's offset).
    held = len(data) + 1000
    tus.wait_for(lambda: tus.offset_of(client, path) == held, 30, "the dropped PATCH's bytes to be kept")

    # A bad job option in Upload-Metadata fails the creation, before any byte: 422.
    _error(tus.create(client, 10, formats="pdf"), 422, "VALIDATION_ERROR")
    _error(tus.create(client, 10, engine="nope"), 422, "VALIDATION_ERROR")
    # A deferred length over the tier's cap: 413 when it is given, and when the bytes pass the cap.
    deferred = client.post("/api/v1/uploads", headers={**tus.TUS, "Upload-Defer-Length": "1"})
    assert deferred.status_code == 201, deferred.text
    assert deferred.headers["upload-defer-length"] == "1"
    _error(
        tus.patch(client, deferred.headers["location"], 0, data, Upload_Length=str(65 * MIB)),
        413,
        "FILE_TOO_LARGE",
    )
    set_length = tus.patch(client, deferred.headers["location"], 0, data, Upload_Length=str(len(data) + 10))
    assert set_length.status_code == 204, set_length.text
    assert tus.head(client, deferred.headers["location"]).headers["upload-length"] == str(len(data) + 10)

    # Another tenant sees nothing: 404 for HEAD, PATCH and DELETE.
    other = tus_stack.stack.create_key(f"other-{uuid.uuid4().hex[:8]}")
    with tus_stack.stack.client_for(other["secret"]) as stranger:
        assert tus.head(stranger, path).status_code == 404
        _error(tus.patch(stranger, path, held, data), 404, "NOT_FOUND")
        _error(stranger.delete(path, headers=tus.TUS), 404, "NOT_FOUND")
    assert tus.offset_of(client, path) == held

    # Deleted: 204, then 404.
    assert client.delete(path, headers=tus.TUS).status_code == 204
    assert tus.head(client, path).status_code == 404
    _error(tus.patch(client, path, held, data), 404, "NOT_FOUND")


def test_creation_with_upload_completes_in_one_request(tus_stack: TusStack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "small.pdf", [TEXT]).read_bytes()
    response = tus_stack.stack.client.post(
        "/api/v1/uploads",
        content=pdf,
        headers={
            **tus.TUS,
            "Upload-Length": str(len(pdf)),
            "Upload-Metadata": tus.metadata(filename="small.pdf", formats="text"),
            "Content-Type": tus.OFFSET_STREAM,
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(pdf))
    assert response.headers["location"].startswith("/api/v1/uploads/")
    job = tus_stack.stack.wait(response.headers["pagemill-job-id"])
    assert job["state"] == "succeeded", job
    assert job["filename"] == "small.pdf"
    assert job["options"]["formats"] == ["text"]


def test_an_idempotency_key_on_creation_replays_the_job(tus_stack: TusStack, docs: Path) -> None:
    pdf = documents.make_text_pdf(docs / "once.pdf", [TEXT]).read_bytes()
    key = f"tus-{uuid.uuid4()}"
    job_ids = []
    for _ in range(2):  # a client that uploaded twice (it lost the first answer) gets one job
        path = tus_stack.stack.client.post(
            "/api/v1/uploads",
            headers={**tus.TUS, "Upload-Length": str(len(pdf)), "Idempotency-Key": key},
        ).headers["location"]
        done = tus.patch(tus_stack.stack.client, path, 0, pdf)
        assert done.status_code == 204, done.text
        job_ids.append(done.headers["pagemill-job-id"])
    assert job_ids[0] == job_ids[1]
    assert done.headers["idempotent-replayed"] == "true"


def test_upload_first_then_submit_by_upload_id(tus_stack: TusStack, docs: Path) -> None:
    client = tus_stack.stack.client
    pdf = documents.make_text_pdf(docs / "later.pdf", [TEXT]).read_bytes()
    path = tus.create_ok(client, len(pdf), filename="later.pdf", submit="false")
    upload_id = _upload_id(path)
    _error(client.post("/api/v1/documents", data={"upload_id": upload_id}), 409, "UPLOAD_INCOMPLETE")
    done = tus.patch(client, path, 0, pdf)
    assert done.status_code == 204, done.text
    assert "pagemill-job-id" not in done.headers  # submit=false: the upload waits

    fields = {"upload_id": upload_id, "formats": "text", "ocr_mode": "text_layer"}
    first = client.post("/api/v1/documents", data=fields)
    assert first.status_code == 202, first.text
    again = client.post("/api/v1/documents", data=fields)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]  # at most one job per upload: the same one, replayed
    assert again.headers["idempotent-replayed"] == "true"
    other = _error(
        client.post("/api/v1/documents", data={**fields, "formats": "json"}), 409, "UPLOAD_ALREADY_USED"
    )
    assert other["details"]["job_id"] == first.json()["id"]
    assert tus_stack.stack.wait(first.json()["id"])["state"] == "succeeded"
    assert tus.head(client, path).headers["pagemill-job-id"] == first.json()["id"]
    # Its bytes are the job's original now: the upload cannot be deleted.
    _error(client.delete(path, headers=tus.TUS), 409, "UPLOAD_ALREADY_USED")
    _error(client.post("/api/v1/documents", data={"upload_id": str(uuid.uuid4())}), 404, "NOT_FOUND")


def test_a_job_refused_at_the_last_byte_leaves_the_upload_complete(tus_stack: TusStack) -> None:
    client = tus_stack.stack.client
    junk = os.urandom(200 * 1024)  # not a document
    path = tus.create_ok(client, len(junk))
    _error(tus.patch(client, path, 0, junk), 415, "UNSUPPORTED_TYPE")
    assert tus.offset_of(client, path) == len(junk)  # kept: the upload is complete
    _error(client.post("/api/v1/documents", data={"upload_id": _upload_id(path)}), 415, "UNSUPPORTED_TYPE")


def test_delete_and_expiry_leave_nothing_behind(tus_stack: TusStack) -> None:
    client = tus_stack.stack.client
    data = os.urandom(6 * MIB + 12345)  # one S3 part, then a pending part
    for finish in ("delete", "expire"):
        path = tus.create_ok(client, 20 * MIB)
        upload_id = _upload_id(path)
        job_id = tus_stack.job_id_of(upload_id)
        assert tus.patch(client, path, 0, data).status_code == 204
        assert tus.patch(client, path, len(data), data[:1000]).status_code == 204
        if tus_stack.s3 is not None:
            assert tus.s3_open_multipart(tus_stack.s3, BUCKET, f"jobs/{job_id}/")  # the upload is open
            assert tus.s3_keys(tus_stack.s3, BUCKET, f"uploads/{upload_id}/")  # the pending part
        else:
            assert tus_stack.leftovers(upload_id, job_id)
        if finish == "delete":
            assert client.delete(path, headers=tus.TUS).status_code == 204
        else:
            tus_stack.expire(upload_id)
            # 410 until the sweeper (every second here) takes it, 404 after: which one this PATCH meets is a
            # race (tests/integration/uploads/test_service.py checks the 410 without a sweeper).
            late = tus.patch(client, path, len(data) + 1000, data)
            assert late.status_code in (404, 410), late.text
            _error(late, late.status_code, "UPLOAD_EXPIRED" if late.status_code == 410 else "NOT_FOUND")
            # The sweeper (every second in tests) marks it deleted (404 from then on), then removes storage.
            tus.wait_for(partial(_gone, client, path), 30, "the sweeper to take it")
            tus.wait_for(
                lambda: not tus_stack.leftovers(upload_id, job_id),  # noqa: B023 - called within the iteration
                30,
                "the sweeper to remove its storage",
            )
        assert tus.head(client, path).status_code == 404
        assert tus_stack.leftovers(upload_id, job_id) == [], finish


# Distributed only: embedded mode runs one API process by design.
@pytest.mark.parametrize("tus_stack", ["distributed"], indirect=True)
def test_two_api_processes_serve_alternate_chunks(tus_stack: TusStack, docs: Path) -> None:
    source = documents.make_padded_pdf(docs / "alternate.pdf", [TEXT], 24 * MIB)
    data = source.read_bytes()
    path = tus.create_ok(tus_stack.stack.client, len(data), filename="alternate.pdf", formats="text")
    with (
        pagemill_api(tus_stack.stack.env) as (_api, second_url),
        tus_stack.stack.client_for(tus_stack.stack.key, second_url) as second,
    ):
        clients = [tus_stack.stack.client, second]
        offset, turn, last = 0, 0, None
        while offset < len(data):
            last = tus.patch(clients[turn % 2], path, offset, data[offset : offset + CHUNK])
            assert last.status_code == 204, last.text
            offset = int(last.headers["upload-offset"])
            turn += 1
        assert turn >= 4
    assert last is not None
    _assert_job_read(tus_stack, last.headers["pagemill-job-id"], source)
