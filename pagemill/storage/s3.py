"""A blob store on S3 (AWS, MinIO, or any S3-protocol server) through boto3, streaming multipart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pagemill.errors import DependencyUnavailable, NotFound
from pagemill.settings import StorageSettings

# boto3 reads each part of a multipart upload into memory, up to max_in_memory_upload_chunks (default 10) of
# 8 MiB ahead of the uploading threads: an API storing a 1 GiB upload grew by ~100 MB. Two parts read ahead
# and two in flight keep a link busy and the growth near 32 MiB (target: < 50 MB while streaming 1 GiB).
_UPLOAD = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
# s3transfer's own setting; boto3's TransferConfig takes it as an attribute only.
_UPLOAD.max_in_memory_upload_chunks = 2


def make_s3_client(settings: StorageSettings, *, attempts: int = 5, unsigned_payload: bool = False) -> Any:
    """A boto3 S3 client of the configured endpoint (path-style, SigV4, the configured timeouts, standard
    retries up to ``attempts``), adding botocore's CRC32 to what it stores unless ``s3_checksums`` is off.
    ``unsigned_payload``: bodies are not hashed for the signature, and no checksum is added unless the call
    passes one (for bodies sent while they arrive, or that carry their own checksum)."""
    add_checksums = settings.s3_checksums and not unsigned_payload
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=Config(
            connect_timeout=settings.s3_timeout_s,
            read_timeout=settings.s3_timeout_s,
            retries={"max_attempts": attempts, "mode": "standard"},
            request_checksum_calculation="when_supported" if add_checksums else "when_required",
            s3={"addressing_style": "path", "payload_signing_enabled": False}
            if unsigned_payload
            else {"addressing_style": "path"},
            # Presigned URLs too are SigV4 (boto3 would make SigV2 ones, which newer regions refuse).
            signature_version="s3v4",
        ),
    )


def _remaining_bytes(fileobj: IO[bytes]) -> int:
    """How many bytes are left to read in a seekable ``fileobj``; its position is kept."""
    position = fileobj.tell()
    end = fileobj.seek(0, 2)
    fileobj.seek(position)
    return end - position


class S3BlobStore:
    """Blobs as objects in one bucket, under an optional prefix."""

    def __init__(self, settings: StorageSettings) -> None:
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self._client: Any = make_s3_client(settings)
        self._bucket_ready = False
        self._lock = threading.Lock()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError:
                try:
                    self._client.create_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") not in {
                        "BucketAlreadyOwnedByYou",
                        "BucketAlreadyExists",
                    }:
                        raise
            self._bucket_ready = True

    def _call(self, fn: Any, /, **kwargs: Any) -> Any:
        try:
            self._ensure_bucket()
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise NotFound("The stored file is missing.") from exc
            raise DependencyUnavailable("Object storage failed.") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Object storage is unreachable.") from exc

    def put_file(
        self, key: str, fileobj: IO[bytes], *, content_type: str = "application/octet-stream"
    ) -> None:
        """Stream the rest of ``fileobj`` to S3: one ``PutObject`` up to 8 MiB, multipart (8 MiB parts)
        above. The small case calls ``put_object`` itself, the request boto3's transfer manager would send
        for it, without the manager and the threads it starts and joins per call: a 1 MB upload took
        1.2 ms and a quarter of its client CPU less (docs/benchmarks.md, "API load")."""
        if fileobj.seekable() and _remaining_bytes(fileobj) <= _UPLOAD.multipart_threshold:
            self._put_object(key, fileobj, content_type)
            return
        self._call(
            self._client.upload_fileobj,
            Fileobj=fileobj,
            Bucket=self.bucket,
            Key=self._key(key),
            ExtraArgs={"ContentType": content_type},
            Config=_UPLOAD,
        )

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store a small blob."""
        self._put_object(key, data, content_type)

    def _put_object(self, key: str, body: bytes | IO[bytes], content_type: str) -> None:
        target = {"Bucket": self.bucket, "Key": self._key(key)}
        self._call(self._client.put_object, **target, Body=body, ContentType=content_type)

    def download_to(self, key: str, path: Path) -> None:
        """Copy an object to a local file."""
        self._call(self._client.download_file, Bucket=self.bucket, Key=self._key(key), Filename=str(path))

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream an object's bytes."""
        response = self._call(self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        return self._read(response["Body"], chunk_size)

    @staticmethod
    def _read(body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self._call(self._client.head_object, Bucket=self.bucket, Key=self._key(key))
        except NotFound:
            return False
        except DependencyUnavailable as exc:
            if isinstance(exc.__cause__, ClientError):
                return False
            raise
        return True

    def copy(self, source_key: str, target_key: str) -> None:
        """Copy an object inside the server, in one request (results and originals stay far below the 5 GB
        a single copy takes)."""
        self._call(
            self._client.copy_object,
            CopySource={"Bucket": self.bucket, "Key": self._key(source_key)},
            Bucket=self.bucket,
            Key=self._key(target_key),
        )

    def download_url(self, key: str, expires_s: int, *, media_type: str, filename: str) -> str | None:
        """A presigned GET URL valid for ``expires_s``, answering with ``media_type`` as an attachment."""
        url: str = self._call(
            self._client.generate_presigned_url,
            ClientMethod="get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentType": media_type,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_s,
        )
        return url

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix``."""
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if objects:
                self._call(self._client.delete_objects, Bucket=self.bucket, Delete={"Objects": objects})

    def check(self) -> None:
        """Raise ``DependencyUnavailable`` when the bucket cannot be reached."""
        self._bucket_ready = False
        self._call(self._client.head_bucket, Bucket=self.bucket)
