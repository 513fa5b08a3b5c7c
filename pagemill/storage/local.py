"""A blob store in a local folder, for embedded mode. Writes are atomic (temp file, then rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pagemill.errors import DependencyUnavailable, NotFound


class LocalBlobStore:
    """Blobs as files under ``root``; keys are relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (workers open originals in place instead of copying them)."""
        path = (self.root / key).resolve()
        # Keys are made by Pagemill, but never let one escape the root.
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def put_file(
        self, key: str, fileobj: IO[bytes], *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store the rest of ``fileobj`` under ``key``, streaming."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(fileobj, out, 1024 * 1024)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store a small blob."""
        import io

        self.put_file(key, io.BytesIO(data), content_type=content_type)

    def download_to(self, key: str, path: Path) -> None:
        """Copy a blob to a local file."""
        src = self.path_for(key)
        if not src.exists():
            raise NotFound("The stored file is missing.")
        shutil.copyfile(src, path)

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream a blob's bytes."""
        src = self.path_for(key)
        if not src.exists():
            raise NotFound("The stored file is missing.")
        return self._read(src, chunk_size)

    @staticmethod
    def _read(src: Path, chunk_size: int) -> Iterator[bytes]:
        with src.open("rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        return self.path_for(key).exists()

    def copy(self, source_key: str, target_key: str) -> None:
        """Copy a blob to another key, atomically (temp file, then rename)."""
        src = self.path_for(source_key)
        if not src.exists():
            raise NotFound("The stored file is missing.")
        with src.open("rb") as f:
            self.put_file(target_key, f)

    def download_url(self, key: str, expires_s: int, *, media_type: str, filename: str) -> str | None:
        """None: a folder has no URLs of its own (the API signs one that it serves itself)."""
        return None

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under a folder-like prefix."""
        target = self.path_for(prefix)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()

    def check(self) -> None:
        """Raise if the folder is not writable."""
        if not os.access(self.root, os.W_OK):
            raise DependencyUnavailable("The blob folder is not writable.")
