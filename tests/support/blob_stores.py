"""Helpers for tests on a real local blob store."""

from __future__ import annotations

from pagemill.storage.local import LocalBlobStore


def stored_keys(store: LocalBlobStore) -> list[str]:
    """Every blob key in the store, sorted."""
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
