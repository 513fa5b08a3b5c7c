"""The S3 backend of uploads: one S3 multipart upload per tus upload, straight to the original's key.

S3 wants every part but the last to be at least 5 MiB (at most 10,000 parts), and tus clients send chunks
of any size. Two ways a PATCH's bytes become parts:

* Streamed (HTTPS endpoints): a PATCH that declares its length (Content-Length), starts where no pending
  bytes wait, and is big enough to be a part (>= 5 MiB, or the upload's last bytes; at most 4 x
  ``uploads.s3_part_bytes``) is sent to S3 as one part *while it arrives*: receiving and uploading
  overlap, so a tus upload is about as fast as one multipart POST. The bytes also go to a bounded temporary
  file: if the client goes away mid-body, the streamed part is abandoned and what arrived is kept from that
  file instead.
* Gathered: otherwise bytes gather in the bounded temporary file and go as a part each time
  ``uploads.s3_part_bytes`` have arrived; when the PATCH ends, at least 5 MiB left over go as a (smaller)
  part, and fewer are stored as a pending-part object that the next PATCH (on any replica) reads first.

Every part carries its CRC32 (``PART_CHECKSUM``; the multipart upload is created with it; unless
``storage.s3_checksums`` is off, for servers that refuse checksums): S3 checks each
part against it, and completes the object from the parts' checksums instead of reading the whole object
again (S3-compatible servers that default to a full-object checksum otherwise do, which made completing a
1 GiB upload on moto take seconds). A gathered part sends it as a header, computed while the bytes were
spooled; a streamed part cannot know it before its body, so it goes as a trailer after the body, which
botocore sends (unsigned payload) over TLS only: on a plain-HTTP endpoint parts are gathered.

Nothing is held whole in memory: a streamed part passes through a queue of at most 4 MiB, a gathered one
through the temporary file. A PATCH that is discarded (checksum mismatch) changes nothing that the upload
row refers to: its parts carry numbers after the kept ones and are overwritten by the next PATCH, and the
old pending object is only replaced by a new key once the row says so.

Streamed parts are sent with an unsigned payload (botocore cannot hash a body it has not seen yet), as
botocore itself does for streams over HTTPS; S3 still checks their length and CRC32.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import zlib
from datetime import datetime
from typing import IO, Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from pagemill.errors import DependencyUnavailable, NotFound
from pagemill.jobs.service import source_key
from pagemill.settings import Settings
from pagemill.settings.uploads import S3_MAX_PART_BYTES, S3_MIN_PART_BYTES
from pagemill.storage.s3 import S3BlobStore, make_s3_client
from pagemill.uploads.s3_part_stream import StreamedPart
from pagemill.uploads.storage import ChunkWriter, Progress, StoredUpload, pending_prefix

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
PART_CHECKSUM = "CRC32"
"""The checksum every part of a new upload carries (S3's ChecksumAlgorithm)."""


class S3ChunkWriter:
    """One PATCH's bytes, sent to the upload's multipart upload part by part."""

    def __init__(
        self, s3: S3UploadStore, upload: StoredUpload, expected: int | None, length: int | None
    ) -> None:
        self.s3 = s3
        self.upload = upload
        self.parts = list(upload.parts)
        self._spool: IO[bytes] = tempfile.TemporaryFile(dir=s3.part_spool_dir)  # noqa: SIM115
        self._spooled = 0
        self._crc32 = 0  # of the spooled bytes: the checksum of the part they become
        self._streamed: StreamedPart | None = None
        if upload.pending_bytes and upload.pending_key:
            # The tail of the previous PATCH, too small to be a part: it goes first.
            for chunk in s3.blobs.iter_chunks(upload.pending_key):
                self._spool_bytes(chunk)
        elif expected and self._can_stream(expected, length):
            self._streamed = StreamedPart(s3, upload, len(self.parts) + 1, expected)

    def _can_stream(self, expected: int, length: int | None) -> bool:
        last = length is not None and self.upload.offset + expected == length
        # Bounded: the fallback file holds the whole PATCH while it streams.
        fits = (expected >= S3_MIN_PART_BYTES or last) and expected <= self.s3.stream_max_bytes
        # A part's checksum goes after a streamed body as a trailer, which botocore sends over TLS only.
        return fits and (self.s3.streams_trailers or not self.upload.checksum)

    @property
    def streaming(self) -> bool:
        """Whether this PATCH's bytes go to S3 as one part while they arrive."""
        return self._streamed is not None

    def _spool_bytes(self, data: bytes) -> None:
        self._spool.write(data)
        self._spooled += len(data)
        self._crc32 = zlib.crc32(data, self._crc32)

    def write(self, data: bytes) -> None:
        """Append: to the streamed part (and the fallback file), or gathered into parts."""
        self._spool_bytes(data)
        if self._streamed is not None:
            self._streamed.feed(data)
        elif self._spooled >= self.s3.part_bytes:
            self._send_part()

    def _send_part(self) -> None:
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise DependencyUnavailable("The upload has more S3 parts than allowed.", max_parts=MAX_PARTS)
        self._spool.seek(0)
        checksum = self._checksum()
        response = self.s3.call(
            "upload_part",
            # With its CRC32 the part needs no payload signature (S3 checks the bytes against it).
            client=self.s3.parts_client if checksum else None,
            Bucket=self.s3.blobs.bucket,
            Key=self.s3.key(source_key(self.upload.job_id)),
            UploadId=self.upload.multipart_id,
            PartNumber=number,
            Body=self._spool,
            ContentLength=self._spooled,
            **({f"Checksum{self.upload.checksum}": checksum} if checksum else {}),
        )
        self._add_part(number, response["ETag"], self._spooled, checksum)
        self._reset_spool()

    def _checksum(self) -> str | None:
        """The spooled bytes' checksum in S3's form (base64 of the big-endian CRC32), if parts carry one."""
        if self.upload.checksum != PART_CHECKSUM:
            return None
        return base64.b64encode(self._crc32.to_bytes(4, "big")).decode()

    def _add_part(self, number: int, etag: str, size: int, checksum: str | None) -> None:
        part: dict[str, Any] = {"number": number, "etag": etag, "size": size}
        if checksum:
            part["checksum"] = checksum
        self.parts.append(part)

    def _reset_spool(self) -> None:
        self._spool.seek(0)
        self._spool.truncate()
        self._spooled = 0
        self._crc32 = 0

    def keep(self, *, new_offset: int, final: bool) -> Progress:
        """Send what can be a part; keep a smaller rest as a new pending object; with ``final`` complete
        the multipart upload (the original exists from then on)."""
        streamed, self._streamed = self._streamed, None
        if streamed is not None:
            if self._spooled == streamed.size:
                etag = streamed.finish()
                # S3's answer names the checksum it checked; the spooled bytes' is the same one.
                self._add_part(streamed.number, etag, streamed.size, streamed.checksum or self._checksum())
                self._reset_spool()
            else:
                # Cut off mid-body: what arrived is in the file, and goes on as gathered bytes.
                streamed.abandon()
        if final:
            if self._spooled or not self.parts:
                self._send_part()
            self.s3.call(
                "complete_multipart_upload",
                Bucket=self.s3.blobs.bucket,
                Key=self.s3.key(source_key(self.upload.job_id)),
                UploadId=self.upload.multipart_id,
                MultipartUpload={"Parts": [self._completed(part) for part in self.parts]},
            )
            return Progress(parts=self.parts, pending_key=None, pending_bytes=0)
        if self._spooled >= S3_MIN_PART_BYTES:
            self._send_part()
        if not self._spooled:
            return Progress(parts=self.parts, pending_key=None, pending_bytes=0)
        # Named by the offset it ends at: a new key each time, so the row never points at a half-written
        # object, and the one it pointed at stays intact until the row points elsewhere.
        key = f"{pending_prefix(self.upload.id)}pending-{new_offset}"
        self._spool.seek(0)
        self.s3.blobs.put_file(key, self._spool)
        return Progress(parts=self.parts, pending_key=key, pending_bytes=self._spooled)

    def _completed(self, part: dict[str, Any]) -> dict[str, Any]:
        """A part as CompleteMultipartUpload lists it: with its checksum when the upload has them."""
        completed = {"PartNumber": part["number"], "ETag": part["etag"]}
        if self.upload.checksum and part.get("checksum"):
            completed[f"Checksum{self.upload.checksum}"] = part["checksum"]
        return completed

    def discard(self) -> None:
        """Nothing to undo: parts sent carry numbers the row does not list (overwritten later)."""
        streamed, self._streamed = self._streamed, None
        if streamed is not None:
            streamed.abandon()

    def close(self) -> None:
        """Stop a streamed part still running; delete the temporary file."""
        self.discard()
        self._spool.close()


class S3UploadStore:
    """Uploads on the S3 blob store's bucket."""

    def __init__(self, blobs: S3BlobStore, settings: Settings) -> None:
        self.blobs = blobs
        self.part_checksum: str | None = PART_CHECKSUM if settings.storage.s3_checksums else None
        self.part_bytes = settings.uploads.s3_part_bytes
        self.stream_max_bytes = min(4 * self.part_bytes, S3_MAX_PART_BYTES)
        self.part_spool_dir = settings.uploads.spool_dir
        storage = settings.storage
        # No endpoint: AWS itself, over HTTPS.
        self.streams_trailers = urlparse(storage.s3_endpoint_url or "https://s3").scheme == "https"
        # Streamed parts: no payload signing (the body is not known before it is sent) and no retries (a
        # stream cannot be rewound; the PATCH falls back to its file instead).
        self.streaming_client = make_s3_client(storage, attempts=1, unsigned_payload=True)
        # Gathered parts with their CRC32: S3 checks the bytes against it, so signing them too would only
        # hash every byte once more on a plain-HTTP endpoint; a file can be sent again.
        self.parts_client = make_s3_client(storage, unsigned_payload=True)

    def key(self, key: str) -> str:
        """The object key of a blob key (the store's prefix applied)."""
        return self.blobs._key(key)

    def call(self, operation: str, *, client: Any = None, **kwargs: Any) -> Any:
        """One S3 call through the blob store's client, or ``client`` (errors mapped to NotFound/503)."""
        return self.blobs._call(getattr(client or self.blobs._client, operation), **kwargs)

    def start(self, upload_id: str, job_id: str, content_length: int | None) -> str | None:
        """Open the multipart upload."""
        response = self.call(
            "create_multipart_upload",
            Bucket=self.blobs.bucket,
            Key=self.key(source_key(job_id)),
            ContentType="application/octet-stream",
            **({"ChecksumAlgorithm": self.part_checksum} if self.part_checksum else {}),
        )
        return str(response["UploadId"])

    def writer(
        self, upload: StoredUpload, expected: int | None = None, length: int | None = None
    ) -> ChunkWriter:
        """A writer for one PATCH declaring ``expected`` bytes (None: unknown) of an upload of ``length``."""
        try:
            return S3ChunkWriter(self, upload, expected, length)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Object storage failed.") from exc

    def read_head(self, job_id: str, size: int) -> bytes:
        """A ranged GET: S3 sends only these bytes, not the whole original."""
        response = self.call(
            "get_object",
            Bucket=self.blobs.bucket,
            Key=self.key(source_key(job_id)),
            Range=f"bytes=0-{size - 1}",
        )
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def forget(self, key: str) -> None:
        """Delete an old pending-part object; a failure only leaves it for the upload's removal."""
        try:
            self.blobs.delete_prefix(key)
        except (DependencyUnavailable, ClientError, BotoCoreError):
            log.warning("could not delete %s; it goes when its upload is removed", key, exc_info=True)

    def open_multiparts(self, started_before: datetime) -> list[tuple[str, str]]:
        """Open multipart uploads of originals (``jobs/<job id>/source``) started before the cut-off."""
        prefix = self.key("jobs/")
        found = []
        paginator = self.blobs._client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.blobs.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    parts = item["Key"][len(prefix) :].split("/")
                    if len(parts) == 2 and parts[1] == "source" and item["Initiated"] < started_before:
                        found.append((parts[0], str(item["UploadId"])))
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Object storage failed.") from exc
        return found

    def abort_multipart(self, job_id: str, multipart_id: str) -> None:
        """Abort one multipart upload; one completed or aborted already is fine."""
        try:
            self.call(
                "abort_multipart_upload",
                Bucket=self.blobs.bucket,
                Key=self.key(source_key(job_id)),
                UploadId=multipart_id,
            )
        except NotFound:
            pass
        except DependencyUnavailable as exc:
            if "NoSuchUpload" not in repr(exc.__cause__):
                raise

    def remove(self, upload_id: str, job_id: str, multipart_id: str | None, *, keep_source: bool) -> None:
        """Abort the multipart upload (its parts are freed) and delete the upload's objects."""
        if multipart_id and not keep_source:
            self.abort_multipart(job_id, multipart_id)
        if not keep_source:
            self.blobs.delete_prefix(f"jobs/{job_id}/")
        self.blobs.delete_prefix(pending_prefix(upload_id))
