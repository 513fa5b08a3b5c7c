"""Where an HTML picture's bytes are: a ``data:`` URI (decoded now, within a byte budget), a ``cid:`` part of
an e-mail, or a file beside the document in its container (an EPUB chapter's ``../images/a.png``).

Remote pictures (``http:``, ``//host``) are never fetched: their ref is None.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import Final
from urllib.parse import unquote, unquote_to_bytes, urlsplit

_MEDIA_PREFIX: Final = "image/"


class DataImages:
    """Pictures of ``data:`` URIs, decoded into ``store`` under refs ``data:N`` (N counts across every
    document sharing the store), until ``budget`` bytes are held; None for a store-less read."""

    def __init__(self, store: dict[str, bytes] | None, budget: int) -> None:
        self._store = store
        self._left = budget - sum(len(data) for data in store.values()) if store is not None else 0

    def add(self, uri: str) -> str | None:
        """The ref of the picture in ``uri`` (a ``data:`` URI), or None: not a picture, undecodable, or
        over the budget."""
        if self._store is None:
            return None
        header, comma, payload = uri[5:].partition(",")
        if not comma:
            return None
        params = [part.strip().lower() for part in header.split(";")]
        if not params[0].startswith(_MEDIA_PREFIX):
            return None
        # A base64 payload decodes to 3/4 of its length; refuse before decoding what would not fit.
        if len(payload) * 3 // 4 > self._left:
            return None
        try:
            if "base64" in params[1:]:
                data = base64.b64decode(unquote(payload).encode("ascii", errors="ignore"))
            else:
                data = unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            return None
        if not data or len(data) > self._left:
            return None
        ref = f"data:{len(self._store)}"
        self._store[ref] = data
        self._left -= len(data)
        return ref


def resolve_src(src: str, base_ref: str | None, data_images: DataImages) -> str | None:
    """The ref of a picture's ``src``: ``data:N``, ``cid:<content-id>``, the path of the file it names
    relative to ``base_ref`` (a path inside the document's container), or None."""
    src = src.strip()
    lowered = src[:5].lower()
    if lowered == "data:":
        return data_images.add(src)
    if lowered.startswith("cid:"):
        content_id = unquote(src[4:]).strip().strip("<>")
        return f"cid:{content_id}" if content_id else None
    if base_ref is None or not src or src.startswith(("/", "\\")):
        return None
    parts = urlsplit(src)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base_ref), unquote(parts.path)))
    if path == ".." or path.startswith("../") or path.startswith("/"):
        return None  # outside the container
    return path


def src_name(src: str) -> str | None:
    """The file name a picture's ``src`` ends with (None for data and cid URIs)."""
    if src.strip()[:5].lower() in ("data:",) or src.strip()[:4].lower() == "cid:":
        return None
    name = posixpath.basename(unquote(urlsplit(src.strip()).path))
    return name or None
