"""Opaque cursors for newest-first listings (jobs, batches): a cursor names the row after which the next page
starts, by its creation time and id."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Protocol

from pagemill.errors import ValidationFailed


class Listed(Protocol):
    """A row of a cursor-paginated listing."""

    id: str
    created_at: datetime


def encode_cursor(row: Listed) -> str:
    """An opaque cursor pointing after ``row``."""
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at in UTC, id) of a cursor; ValidationFailed if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("cursor time without a zone")
        # In UTC, as stored; an offset that takes the time past year 1 or 9999 is no cursor of ours.
        return created_at.astimezone(UTC), row_id
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("The cursor is not valid.", field="cursor") from exc
