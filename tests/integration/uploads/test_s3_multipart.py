"""The S3 upload writer against a real S3 server (moto, over HTTP and over HTTPS): small chunks gathered
into parts of at least 5 MiB through pending-part objects, big chunks streamed as one part while they
arrive over HTTPS (and kept from the fallback file when cut off), every part with its CRC32, completion,
and removal that leaves no object and no open multipart upload."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pagemill.jobs.service import source_key
from pagemill.settings import Settings, StorageSettings
from pagemill.settings.uploads import S3_MIN_PART_BYTES
from pagemill.storage.s3 import S3BlobStore
from pagemill.uploads.s3_multipart import S3ChunkWriter, S3UploadStore
from pagemill.uploads.storage import StoredUpload
from tests.support.egress_servers import make_certificates
from tests.support.services import S3Server, s3_server

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
BUCKET = "pagemill-uploads-test"


@pytest.fixture(scope="module")
def s3_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's server over HTTPS, its certificate signed by a throwaway CA."""
    certificates = make_certificates(tmp_path_factory.mktemp("s3-tls"), "localhost")
    with s3_server(tls=certificates) as server:
        yield server


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server of the test: the session's, over plain HTTP, or over HTTPS (botocore trusting its CA)."""
    if request.param == "http":
        plain: S3Server = request.getfixturevalue("s3")
        return plain
    tls: S3Server = request.getfixturevalue("s3_tls")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls.ca_file))
    return tls


def _store(s3: S3Server, *, checksums: bool = True) -> S3UploadStore:
    storage = StorageSettings(
        backend="s3",
        s3_bucket=BUCKET,
        s3_endpoint_url=s3.endpoint_url,
        s3_region=s3.region,
        s3_access_key_id=s3.access_key_id,
        s3_secret_access_key=s3.secret_access_key,
        s3_checksums=checksums,
    )
    return S3UploadStore(S3BlobStore(storage), Settings(storage=storage))


@pytest.fixture
def uploads(server: S3Server) -> Iterator[S3UploadStore]:
    yield _store(server)


def _patch(
    uploads: S3UploadStore, upload: StoredUpload, data: bytes, *, length: int, declared: int | None = None
) -> StoredUpload:
    """One PATCH through the writer, kept as the service keeps it; the upload's new state."""
    writer = uploads.writer(upload, declared, length)
    for start in range(0, len(data), MIB):
        writer.write(data[start : start + MIB])
    new_offset = upload.offset + len(data)
    progress = writer.keep(new_offset=new_offset, final=new_offset == length)
    writer.close()
    if upload.pending_key and upload.pending_key != progress.pending_key:
        uploads.forget(upload.pending_key)
    return replace(
        upload,
        offset=new_offset,
        parts=progress.parts,
        pending_key=progress.pending_key,
        pending_bytes=progress.pending_bytes,
    )


def _left(s3: S3Server, upload: StoredUpload) -> tuple[list[str], list[str]]:
    client = s3.client()
    keys = []
    for prefix in (f"jobs/{upload.job_id}/", f"uploads/{upload.id}/"):
        keys += [
            obj["Key"] for obj in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        ]
    open_uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=f"jobs/{upload.job_id}/").get(
        "Uploads", []
    )
    return keys, [item["Key"] for item in open_uploads]


def _new(uploads: S3UploadStore, length: int) -> StoredUpload:
    upload_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    multipart_id = uploads.start(upload_id, job_id, length)
    return StoredUpload(
        id=upload_id, job_id=job_id, offset=0, multipart_id=multipart_id, checksum=uploads.part_checksum
    )


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _assert_checksums(upload: StoredUpload, data: bytes) -> None:
    """Every part names the CRC32 of its bytes (S3 refuses a part whose bytes do not match it; moto does not
    check, so the test does)."""
    start = 0
    for part in upload.parts:
        assert part["checksum"] == _crc32(data[start : start + part["size"]])
        start += part["size"]
    assert start == len(data)


def test_small_chunks_gather_into_parts_of_at_least_5_mib(uploads: S3UploadStore, server: S3Server) -> None:
    data = os.urandom(13 * MIB + 4321)
    upload = _new(uploads, len(data))
    for start in range(0, len(data), 2 * MIB):
        upload = _patch(uploads, upload, data[start : start + 2 * MIB], length=len(data))
        if upload.offset < len(data):
            assert upload.pending_bytes == upload.offset - sum(part["size"] for part in upload.parts)
            assert (upload.pending_key is not None) == (upload.pending_bytes > 0)
    sizes = [part["size"] for part in upload.parts]
    assert all(size >= S3_MIN_PART_BYTES for size in sizes[:-1])
    assert sum(sizes) == len(data)
    body = server.client().get_object(Bucket=BUCKET, Key=source_key(upload.job_id))["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    _assert_checksums(upload, data)
    # Completed from the parts' CRC32s: the object's checksum is theirs.
    head = server.client().head_object(Bucket=BUCKET, Key=source_key(upload.job_id), ChecksumMode="ENABLED")
    assert "ChecksumCRC32" in head
    keys, open_uploads = _left(server, upload)
    assert keys == [source_key(upload.job_id)]  # no pending object left behind
    assert open_uploads == []
    assert uploads.read_head(upload.job_id, 4096) == data[:4096]


def test_a_big_chunk_streams_over_https_and_a_cut_off_one_is_kept_from_its_file(
    uploads: S3UploadStore, server: S3Server
) -> None:
    data = os.urandom(14 * MIB)
    upload = _new(uploads, len(data))
    writer = uploads.writer(upload, 6 * MIB, len(data))
    # Its CRC32 follows a streamed body as a trailer, which botocore sends over TLS only.
    assert isinstance(writer, S3ChunkWriter) and writer.streaming == server.endpoint_url.startswith("https")
    writer.close()
    upload = _patch(uploads, upload, data[: 6 * MIB], length=len(data), declared=6 * MIB)
    assert [part["size"] for part in upload.parts] == [6 * MIB]  # one part, streamed or gathered
    assert upload.pending_key is None
    # Declares 6 MiB, the client goes away after 2: the 2 MiB are kept (pending), the streamed part dropped.
    upload = _patch(uploads, upload, data[6 * MIB : 8 * MIB], length=len(data), declared=6 * MIB)
    assert (upload.offset, upload.pending_bytes, len(upload.parts)) == (8 * MIB, 2 * MIB, 1)
    # Resumed: pending bytes first, so this one is gathered, not streamed.
    upload = _patch(uploads, upload, data[8 * MIB :], length=len(data), declared=6 * MIB)
    body = server.client().get_object(Bucket=BUCKET, Key=source_key(upload.job_id))["Body"].read()
    assert body == data
    _assert_checksums(upload, data)


def test_an_upload_started_before_part_checksums_streams_and_completes_without_them(
    uploads: S3UploadStore, server: S3Server
) -> None:
    data = os.urandom(12 * MIB)
    upload_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    # As created before parts had checksums: no ChecksumAlgorithm, none recorded on the upload.
    uploads.blobs.put_bytes("probe", b"")  # the store makes its bucket on first use
    created = server.client().create_multipart_upload(Bucket=BUCKET, Key=source_key(job_id))
    upload = StoredUpload(id=upload_id, job_id=job_id, offset=0, multipart_id=created["UploadId"])
    writer = uploads.writer(upload, 6 * MIB, len(data))
    assert isinstance(writer, S3ChunkWriter) and writer.streaming  # over HTTP too, as before
    writer.close()
    upload = _patch(uploads, upload, data[: 6 * MIB], length=len(data), declared=6 * MIB)
    upload = _patch(uploads, upload, data[6 * MIB :], length=len(data), declared=6 * MIB)
    assert all("checksum" not in part for part in upload.parts)
    body = server.client().get_object(Bucket=BUCKET, Key=source_key(job_id))["Body"].read()
    assert body == data


def test_remove_aborts_the_multipart_upload_and_deletes_everything(
    uploads: S3UploadStore, server: S3Server
) -> None:
    upload = _new(uploads, 20 * MIB)
    upload = _patch(uploads, upload, os.urandom(6 * MIB + 10), length=20 * MIB)
    upload = _patch(uploads, upload, os.urandom(100), length=20 * MIB)
    keys, open_uploads = _left(server, upload)
    assert keys and open_uploads
    uploads.remove(upload.id, upload.job_id, upload.multipart_id, keep_source=False)
    assert _left(server, upload) == ([], [])
    uploads.remove(upload.id, upload.job_id, upload.multipart_id, keep_source=False)  # again: harmless


def test_with_checksums_off_parts_carry_none_and_stream_on_any_endpoint(server: S3Server) -> None:
    # For an S3-compatible server that refuses checksum headers (storage.s3_checksums = false).
    uploads = _store(server, checksums=False)
    data = os.urandom(12 * MIB)
    upload = _new(uploads, len(data))
    assert upload.checksum is None
    writer = uploads.writer(upload, 6 * MIB, len(data))
    assert isinstance(writer, S3ChunkWriter) and writer.streaming
    writer.close()
    for start in (0, 6 * MIB):
        upload = _patch(uploads, upload, data[start : start + 6 * MIB], length=len(data), declared=6 * MIB)
    assert [part["size"] for part in upload.parts] == [6 * MIB, 6 * MIB]
    assert all("checksum" not in part for part in upload.parts)
    client, key = server.client(), source_key(upload.job_id)
    # Created without CRC32: the object has no checksum composed of the parts' CRC32s.
    assert "ChecksumCRC32" not in client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
