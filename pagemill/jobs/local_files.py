"""Worker-local copies of job originals, kept briefly so a job's many page tasks download it once."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from pagemill.storage import BlobStore
from pagemill.storage.local import LocalBlobStore

_MAX_FILES = 4
_lock = threading.Lock()
_cache: OrderedDict[str, Path] = OrderedDict()
_cache_dir: Path | None = None


def local_copy(store: BlobStore, key: str) -> Path:
    """A local path holding the blob ``key`` (the file itself for the local store, else a cached download)."""
    if isinstance(store, LocalBlobStore):
        return store.path_for(key)
    global _cache_dir
    with _lock:
        if key in _cache and _cache[key].exists():
            _cache.move_to_end(key)
            return _cache[key]
        if _cache_dir is None:
            _cache_dir = Path(tempfile.mkdtemp(prefix="pagemill-sources-"))
        path = _cache_dir / key.replace("/", "_")
        tmp = path.with_suffix(".part")
        store.download_to(key, tmp)
        tmp.replace(path)
        _cache[key] = path
        while len(_cache) > _MAX_FILES:
            _, old = _cache.popitem(last=False)
            old.unlink(missing_ok=True)
        return path


def clear_local_copies() -> None:
    """Remove every cached copy (process exit, tests)."""
    global _cache_dir
    with _lock:
        _cache.clear()
        if _cache_dir is not None:
            shutil.rmtree(_cache_dir, ignore_errors=True)
            _cache_dir = None
