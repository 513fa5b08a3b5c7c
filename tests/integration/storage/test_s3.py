"""The S3 blob store against a real S3-protocol server (moto): what put_file sends for small and big files,
and that it stores exactly the rest of the file either way."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator

import pytest

from pagemill.settings import StorageSettings
from pagemill.storage.s3 import _UPLOAD, S3BlobStore
from tests.support.services import S3Server

pytestmark = pytest.mark.integration


@pytest.fixture
def store(s3: S3Server) -> Iterator[S3BlobStore]:
    """A store on a bucket of its own."""
    yield S3BlobStore(
        StorageSettings(
            backend="s3",
            s3_bucket=f"pagemill-s3-{uuid.uuid4().hex[:8]}",
            s3_endpoint_url=s3.endpoint_url,
            s3_region=s3.region,
            s3_access_key_id=s3.access_key_id,
            s3_secret_access_key=s3.secret_access_key,
        )
    )


def stored(store: S3BlobStore, key: str) -> tuple[bytes, str]:
    """An object's bytes and its ETag (a multipart upload's ends in -<parts>)."""
    head = store._client.head_object(Bucket=store.bucket, Key=key)
    return b"".join(store.iter_chunks(key)), head["ETag"].strip('"')


class Unseekable(io.BytesIO):
    """A stream that says it can only be read forward (a pipe, a socket)."""

    def seekable(self) -> bool:
        return False


def test_a_small_file_is_one_put_of_the_rest_of_the_file(store: S3BlobStore) -> None:
    data = os.urandom(1024 * 1024)
    fileobj = io.BytesIO(b"skipped" + data)
    fileobj.seek(len(b"skipped"))
    store.put_file("small", fileobj, content_type="application/pdf")
    body, etag = stored(store, "small")
    assert body == data
    assert "-" not in etag, "one PutObject"
    assert store._client.head_object(Bucket=store.bucket, Key="small")["ContentType"] == "application/pdf"


def test_a_file_over_the_threshold_is_a_multipart_upload(store: S3BlobStore) -> None:
    data = os.urandom(_UPLOAD.multipart_threshold + 1024)
    store.put_file("big", io.BytesIO(data))
    body, etag = stored(store, "big")
    assert body == data
    assert etag.endswith("-2"), "two 8 MiB parts"


def test_a_stream_that_cannot_seek_is_stored_whole(store: S3BlobStore) -> None:
    data = os.urandom(300 * 1024)
    store.put_file("stream", Unseekable(data))
    assert stored(store, "stream")[0] == data
