"""Blob storage: originals and results, behind one interface (local folder or S3)."""

from __future__ import annotations

import functools

from pagemill.settings import Settings, get_settings
from pagemill.storage.base import BlobStore


def make_blob_store(settings: Settings) -> BlobStore:
    """Build the configured blob store."""
    if settings.storage.backend == "s3":
        from pagemill.storage.s3 import S3BlobStore

        return S3BlobStore(settings.storage)
    from pagemill.storage.local import LocalBlobStore

    return LocalBlobStore(settings.blob_path)


@functools.cache
def get_blob_store() -> BlobStore:
    """The process-wide blob store, created on first use (after any fork)."""
    return make_blob_store(get_settings())


__all__ = ["BlobStore", "get_blob_store", "make_blob_store"]
