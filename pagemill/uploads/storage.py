"""Where an upload's bytes go while it is received: an interface, and the local-folder backend.

Every upload is written where its job's original will live (``jobs/<job_id>/source``): finishing an upload
moves and copies nothing. A PATCH gets a :class:`ChunkWriter` while it holds the upload's lock; it either
keeps what arrived (the stored offset moves) or discards it (a checksum mismatch: the offset stays).
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol

from pagemill.jobs.service import source_key
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.storage.local import LocalBlobStore


@dataclass(frozen=True)
class StoredUpload:
    """What a writer needs to know of an upload (a snapshot of its row, taken under its lock)."""

    id: str
    job_id: str
    offset: int
    multipart_id: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    pending_key: str | None = None
    pending_bytes: int = 0
    checksum: str | None = None
    """The part checksum algorithm its S3 multipart upload was created with (None: none, as before they
    were used, or the local backend)."""


@dataclass(frozen=True)
class Progress:
    """Where the kept bytes are, to store on the upload row (S3: parts so far and the pending part)."""

    parts: list[dict[str, Any]]
    pending_key: str | None
    pending_bytes: int


class ChunkWriter(Protocol):
    """Receives one PATCH's bytes in order. Blocking: call it from a worker thread."""

    def write(self, data: bytes) -> None:
        """Append bytes after those written so far."""
        ...

    def keep(self, *, new_offset: int, final: bool) -> Progress:
        """Make what arrived durable (with ``final``: the whole original, in place); where it is."""
        ...

    def discard(self) -> None:
        """Forget what this PATCH wrote: the upload is as it was before."""
        ...

    def close(self) -> None:
        """Free the writer's resources (temporary files, file handles)."""
        ...


class UploadStore(Protocol):
    """The upload side of a blob store."""

    part_checksum: str | None
    """The checksum algorithm :meth:`start` creates an upload's parts with (recorded on the upload)."""

    def start(self, upload_id: str, job_id: str, content_length: int | None) -> str | None:
        """Prepare an upload's storage; the S3 multipart upload id (None for the local backend)."""
        ...

    def writer(
        self, upload: StoredUpload, expected: int | None = None, length: int | None = None
    ) -> ChunkWriter:
        """A writer for one PATCH of ``upload`` (caller holds its lock) that declares ``expected`` bytes
        (its Content-Length; None: unknown), of an upload of ``length`` bytes (None: deferred)."""
        ...

    def read_head(self, job_id: str, size: int) -> bytes:
        """The first ``size`` bytes of a finished upload's original (to sniff its type)."""
        ...

    def forget(self, key: str) -> None:
        """Delete a pending-part object that the upload no longer refers to (best effort)."""
        ...

    def remove(self, upload_id: str, job_id: str, multipart_id: str | None, *, keep_source: bool) -> None:
        """Delete everything of an upload: its multipart upload aborted, its objects and files deleted; the
        original too unless ``keep_source`` (it is a job's now)."""
        ...

    def open_multiparts(self, started_before: datetime) -> list[tuple[str, str]]:
        """(job id, multipart id) of the multipart uploads still open under ``jobs/`` that were started
        before ``started_before`` (S3; none on the local backend)."""
        ...

    def abort_multipart(self, job_id: str, multipart_id: str) -> None:
        """Abort one multipart upload (its parts are freed); nothing else is touched."""
        ...


def pending_prefix(upload_id: str) -> str:
    """The folder of an upload's own objects (S3 pending parts)."""
    return f"uploads/{upload_id}/"


class LocalChunkWriter:
    """Appends to the original's file. The file is cut back to the stored offset first: bytes a PATCH
    wrote but never kept (a replica that died before committing) are not part of the upload."""

    def __init__(self, path: str, offset: int) -> None:
        self.start = offset
        self._file: IO[bytes] = open(path, "r+b")  # noqa: SIM115 - closed by close()
        self._file.truncate(offset)
        self._file.seek(offset)

    def write(self, data: bytes) -> None:
        """Append bytes."""
        self._file.write(data)

    def keep(self, *, new_offset: int, final: bool) -> Progress:
        """Flush and fsync: an offset the client is told is an offset on disk."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return Progress(parts=[], pending_key=None, pending_bytes=0)

    def discard(self) -> None:
        """Cut the file back to where this PATCH started."""
        self._file.truncate(self.start)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class LocalUploadStore:
    """Uploads on the local blob folder: the original's file grows with each PATCH."""

    part_checksum: str | None = None

    def __init__(self, blobs: LocalBlobStore) -> None:
        self.blobs = blobs

    def start(self, upload_id: str, job_id: str, content_length: int | None) -> str | None:
        """Create the original's empty file."""
        path = self.blobs.path_for(source_key(job_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return None

    def writer(
        self, upload: StoredUpload, expected: int | None = None, length: int | None = None
    ) -> ChunkWriter:
        """An appender at the stored offset."""
        return LocalChunkWriter(str(self.blobs.path_for(source_key(upload.job_id))), upload.offset)

    def read_head(self, job_id: str, size: int) -> bytes:
        """The file's first bytes."""
        with self.blobs.path_for(source_key(job_id)).open("rb") as f:
            return f.read(size)

    def forget(self, key: str) -> None:
        """Nothing to forget: the local backend has no pending parts."""

    def open_multiparts(self, started_before: datetime) -> list[tuple[str, str]]:
        """None: a folder has no multipart uploads."""
        return []

    def abort_multipart(self, job_id: str, multipart_id: str) -> None:
        """Nothing to abort on a folder."""

    def remove(self, upload_id: str, job_id: str, multipart_id: str | None, *, keep_source: bool) -> None:
        """Delete the original's folder unless it is a job's."""
        if not keep_source:
            self.blobs.delete_prefix(f"jobs/{job_id}/")
        self.blobs.delete_prefix(pending_prefix(upload_id))


# One per blob store (per process): the S3 one holds a boto3 client of its own, far too costly to make per
# request.
_UPLOAD_STORES: weakref.WeakKeyDictionary[Any, UploadStore] = weakref.WeakKeyDictionary()
_UPLOAD_STORES_LOCK = threading.Lock()


def make_upload_store(store: BlobStore, settings: Settings) -> UploadStore:
    """The upload store of the configured blob store (made once per blob store)."""
    with _UPLOAD_STORES_LOCK:
        made = _UPLOAD_STORES.get(store)
        if made is None:
            made = _UPLOAD_STORES[store] = _new_upload_store(store, settings)
    return made


def _new_upload_store(store: BlobStore, settings: Settings) -> UploadStore:
    if isinstance(store, LocalBlobStore):
        return LocalUploadStore(store)
    from pagemill.storage.s3 import S3BlobStore
    from pagemill.uploads.s3_multipart import S3UploadStore

    if isinstance(store, S3BlobStore):
        return S3UploadStore(store, settings)
    raise TypeError(f"no upload store for {type(store).__name__}")
