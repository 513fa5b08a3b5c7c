"""A streamed S3 part: a PATCH's bytes sent to its upload's S3 part by a thread while they arrive
(pagemill.uploads.s3_multipart)."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from pagemill.errors import DependencyUnavailable
from pagemill.jobs.service import source_key
from pagemill.uploads.storage import StoredUpload

if TYPE_CHECKING:
    from pagemill.uploads.s3_multipart import S3UploadStore

# Pieces (up to 1 MiB each) queued between the request and the thread sending a streamed part.
_STREAM_QUEUE = 4


class _Aborted(Exception):
    """The streamed part was given up (the client went away, or the PATCH was discarded)."""


class _PartStream:
    """A file-like body for ``upload_part`` that reads what the request hands over, as it arrives."""

    def __init__(self) -> None:
        self._pieces: queue.Queue[bytes | _Aborted | None] = queue.Queue(maxsize=_STREAM_QUEUE)
        self._buffer = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        """botocore asks."""
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes; b"" at the end; raises when the part was abandoned."""
        while not self._buffer and not self._ended:
            item = self._pieces.get()
            if isinstance(item, _Aborted):
                raise item
            if item is None:
                self._ended = True
            else:
                self._buffer = memoryview(item)
        size = len(self._buffer) if size is None or size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)

    def put(self, item: bytes | _Aborted | None, sender: threading.Thread) -> None:
        """Hand a piece over (None: the end), waiting while the queue is full and the sender alive."""
        while True:
            try:
                self._pieces.put(item, timeout=0.5)
                return
            except queue.Full:
                if not sender.is_alive():
                    return  # it failed: its error is reported by keep()


class StreamedPart:
    """One part sent by a thread while the PATCH's bytes arrive."""

    def __init__(self, s3: S3UploadStore, upload: StoredUpload, number: int, size: int) -> None:
        self.number = number
        self.size = size
        self.body = _PartStream()
        self.etag: str | None = None
        self.checksum: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._send, args=(s3, upload), name=f"s3-part-{upload.id[:8]}-{number}", daemon=True
        )
        self._thread.start()

    def _send(self, s3: S3UploadStore, upload: StoredUpload) -> None:
        # With a checksum algorithm botocore computes it while sending and appends it as a trailer.
        checksum = {"ChecksumAlgorithm": upload.checksum} if upload.checksum else {}
        try:
            response = s3.streaming_client.upload_part(
                Bucket=s3.blobs.bucket,
                Key=s3.key(source_key(upload.job_id)),
                UploadId=upload.multipart_id,
                PartNumber=self.number,
                Body=self.body,
                ContentLength=self.size,
                **checksum,
            )
            self.etag = str(response["ETag"])
            self.checksum = response.get(f"Checksum{upload.checksum}") if upload.checksum else None
        except BaseException as exc:  # reported by finish(); the thread must not die silently
            self.error = exc

    def feed(self, data: bytes) -> None:
        """Pass bytes on to S3."""
        self.body.put(data, self._thread)

    def finish(self) -> str:
        """End the body and wait for S3's answer; the part's ETag."""
        self.body.put(None, self._thread)
        self._thread.join()
        if self.etag is None:
            raise DependencyUnavailable("Object storage failed.") from self.error
        return self.etag

    def abandon(self) -> None:
        """Give the part up (its request fails; the part number is reused later)."""
        self.body.put(_Aborted(), self._thread)
        self._thread.join(timeout=60)
