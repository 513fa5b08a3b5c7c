"""The blob store interface. Everything streams: no whole document or result is held in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol


class BlobStore(Protocol):
    """Stores immutable blobs under deterministic keys (so retried tasks overwrite, never duplicate)."""

    def put_file(
        self, key: str, fileobj: IO[bytes], *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store the rest of ``fileobj`` under ``key``, streaming."""
        ...

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store a small blob."""
        ...

    def download_to(self, key: str, path: Path) -> None:
        """Copy a blob to a local file (workers open documents from local disk)."""
        ...

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream a blob's bytes. Raises ``pagemill.errors.NotFound`` when absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        ...

    def copy(self, source_key: str, target_key: str) -> None:
        """Copy a blob to another key (on S3 inside the server). Raises ``NotFound`` when absent."""
        ...

    def download_url(self, key: str, expires_s: int, *, media_type: str, filename: str) -> str | None:
        """A URL that serves the blob without credentials for ``expires_s`` (a presigned S3 URL), or None
        when this store cannot make one (the local folder: the API signs a URL of its own instead)."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob whose key starts with ``prefix``."""
        ...

    def check(self) -> None:
        """Raise ``DependencyUnavailable`` if the store cannot be reached (readiness)."""
        ...
