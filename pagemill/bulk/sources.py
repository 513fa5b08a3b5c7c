"""Where `pagemill backfill` finds documents: a folder, or an S3 bucket and prefix, and its filters.

Types are told from file names here (``.pdf``, ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``,
``.webp``), not from content as `pagemill convert` does: reading the first bytes of every object of a
bucket would cost a request each, and the server sniffs every upload anyway (a misnamed file is refused
with ``UNSUPPORTED_TYPE`` and reported).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

SUFFIX_KINDS: dict[str, str] = {
    ".pdf": "pdf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
}
IMAGE_KINDS = frozenset({"png", "jpeg", "tiff", "webp"})
TYPE_NAMES = frozenset({"pdf", "image", *IMAGE_KINDS})

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


@dataclass(frozen=True, slots=True)
class SourceObject:
    """A document of the source: its key (its path under the folder, or under the prefix's folder,
    ``/``-separated), where it is (``location``: an absolute path, ``s3://bucket/key``), its size, last
    modification and version (a file's mtime in ns; an object's ETag), which tell a changed document from
    one already submitted."""

    key: str
    location: str
    size: int
    modified: datetime
    version: str

    @property
    def kind(self) -> str | None:
        """The document kind its name says, or None."""
        return SUFFIX_KINDS.get(PurePosixPath(self.key).suffix.lower())

    @property
    def name(self) -> str:
        """The file name."""
        return PurePosixPath(self.key).name


class SourceError(Exception):
    """The source could not be listed or a document of it read (its message says which and why)."""


class Source(Protocol):
    """A place documents are listed and read from."""

    location: str

    def objects(self) -> Iterator[SourceObject]:
        """Every document, sorted by key."""
        ...

    def open(self, obj: SourceObject) -> contextlib.AbstractContextManager[IO[bytes]]:
        """The bytes of ``obj``, from the start."""
        ...


class FolderSource:
    """Files under a folder (recursive; hidden files and folders skipped; links to folders not followed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root.resolve())

    def objects(self) -> Iterator[SourceObject]:
        """Every file, sorted by its path under the folder."""
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if not n.startswith(".")):
                path = Path(folder) / name
                try:
                    stat = path.stat()
                except OSError:
                    continue  # gone since the folder was listed
                yield SourceObject(
                    key=path.relative_to(self.root).as_posix(),
                    location=str(path.resolve()),
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                    version=str(stat.st_mtime_ns),
                )

    @contextlib.contextmanager
    def open(self, obj: SourceObject) -> Iterator[IO[bytes]]:
        """The file."""
        try:
            body = Path(obj.location).open("rb")  # noqa: SIM115 - closed below; only opening is guarded
        except OSError as exc:  # gone or unreadable since it was listed
            raise SourceError(f"{obj.location} could not be read: {exc.strerror}") from None
        with body:
            yield body


class S3Source:
    """Objects under ``s3://bucket/prefix``, read with boto3 and its usual settings (``AWS_*`` variables,
    profiles, instance roles); ``endpoint_url`` for MinIO and other S3-protocol servers."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        # Keys are named from the prefix's folder: prefix "scans/2024" lists scans/2024/a.pdf and
        # scans/2024-old/b.pdf, keyed 2024/a.pdf and 2024-old/b.pdf.
        self._base = prefix[: prefix.rfind("/") + 1]
        self.location = f"s3://{bucket}/{prefix}"
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )

    def objects(self) -> Iterator[SourceObject]:
        """Every object under the prefix (S3 lists keys in order), folder markers left out."""
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        with _s3_errors(f"{self.location} could not be listed"):
            yield from self._objects(pages)

    def _objects(self, pages: Any) -> Iterator[SourceObject]:
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if key.endswith("/"):
                    continue
                yield SourceObject(
                    key=key[len(self._base) :],
                    location=f"s3://{self.bucket}/{key}",
                    size=int(item["Size"]),
                    modified=item["LastModified"].astimezone(UTC),
                    version=str(item.get("ETag", "")).strip('"'),
                )

    @contextlib.contextmanager
    def open(self, obj: SourceObject) -> Iterator[IO[bytes]]:
        """The object, downloaded to a temporary file (an upload needs a file it can read again when a
        request is retried)."""
        key = obj.location[len(f"s3://{self.bucket}/") :]
        with tempfile.TemporaryFile() as spool:
            with _s3_errors(f"{obj.location} could not be read"):
                self._client.download_fileobj(self.bucket, key, spool)
            spool.seek(0)
            yield spool


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """boto3's failures as SourceError: ``what`` and the error's code (no credentials in it)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        raise SourceError(f"{what}: {exc.response.get('Error', {}).get('Code', 'error')}") from None
    except BotoCoreError as exc:
        raise SourceError(f"{what}: {type(exc).__name__}") from None


def open_source(location: str, *, endpoint_url: str | None = None) -> Source:
    """The source named by ``location``: ``s3://bucket/prefix`` or a folder. ValueError when neither."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"{location!r} names no bucket (s3://bucket/prefix)")
        return S3Source(bucket, prefix, endpoint_url=endpoint_url)
    root = Path(location)
    if not root.is_dir():
        raise ValueError(f"{location!r} is not a folder (or s3://bucket/prefix)")
    return FolderSource(root)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which documents of a source are backfilled. ``kinds`` None: every kind Pagemill reads."""

    kinds: frozenset[str] | None = None
    min_size: int | None = None
    max_size: int | None = None
    modified_since: datetime | None = None
    modified_until: datetime | None = None

    def rejects(self, obj: SourceObject) -> str | None:
        """Why ``obj`` is left out (``type``, ``size``, ``modified``), or None when it is kept."""
        kind = obj.kind
        if kind is None or (self.kinds is not None and kind not in self.kinds):
            return "type"
        if (self.min_size is not None and obj.size < self.min_size) or (
            self.max_size is not None and obj.size > self.max_size
        ):
            return "size"
        if (self.modified_since is not None and obj.modified < self.modified_since) or (
            self.modified_until is not None and obj.modified >= self.modified_until
        ):
            return "modified"
        return None


def parse_types(value: str) -> frozenset[str]:
    """``pdf,image`` -> the kinds (``image``: png, jpeg, tiff, webp). ValueError for an unknown name."""
    names = {name.strip().lower() for name in value.split(",") if name.strip()}
    unknown = sorted(names - TYPE_NAMES)
    if unknown or not names:
        raise ValueError(
            f"unknown type {', '.join(unknown) or '(none)'}; choose from {', '.join(sorted(TYPE_NAMES))}"
        )
    kinds = set(names - {"image"})
    if "image" in names:
        kinds |= IMAGE_KINDS
    return frozenset(kinds)


def parse_size(value: str) -> int:
    """``1500``, ``10k``, ``10KB``, ``5MiB``, ``2g`` -> bytes (k = 1000; Ki = 1024). ValueError otherwise."""
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size (e.g. 500k, 10MB, 1GiB)")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    scale = _UNITS.get(unit[:1])
    if scale is None:
        raise ValueError(f"{value!r} is not a size (e.g. 500k, 10MB, 1GiB)")
    if unit[1:2] == "i":
        scale = 1024 ** (list(_UNITS).index(unit[:1]))
    return int(number * scale)


def parse_time(value: str) -> datetime:
    """``2024-05-01`` or ``2024-05-01T12:00:00+02:00`` -> an aware datetime (UTC when no offset is given).
    ValueError otherwise."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
