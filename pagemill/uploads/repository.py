"""All SQL for uploads. Writes of a PATCH are fenced on its lock token and the offset it started from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from pagemill.models import Upload, UploadState
from pagemill.models.base import utcnow


def add_upload(session: Session, upload: Upload) -> None:
    """Insert a new upload."""
    session.add(upload)


def get_upload(session: Session, upload_id: str) -> Upload | None:
    """An upload by id, or None."""
    return session.get(Upload, upload_id)


def take_lock(session: Session, upload_id: str, token: str, now: datetime, until: datetime) -> bool:
    """Lock a receiving upload for one PATCH unless another holds an unexpired lock; whether it did.

    One conditional UPDATE: on Postgres the row lock it takes makes a concurrent one wait and then see the
    lock taken; on SQLite writers are serialised. No transaction stays open while the body arrives.
    """
    result = session.execute(
        update(Upload)
        .where(
            Upload.id == upload_id,
            Upload.state == UploadState.RECEIVING,
            or_(Upload.lock_token.is_(None), Upload.locked_until < now),
        )
        .values(lock_token=token, locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_lock(session: Session, upload_id: str, token: str, until: datetime) -> bool:
    """Extend a held lock; False if it was lost (it lapsed and another PATCH took it)."""
    result = session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lock_token == token)
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_lock(session: Session, upload_id: str, token: str) -> None:
    """Give a lock back without changing the upload."""
    session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lock_token == token)
        .values(lock_token=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )


def set_length(session: Session, upload_id: str, token: str, length: int) -> bool:
    """Fix a deferred Upload-Length (once: only while it is unknown)."""
    result = session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lock_token == token, Upload.length.is_(None))
        .values(length=length)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def save_progress(
    session: Session,
    upload_id: str,
    token: str,
    *,
    from_offset: int,
    to_offset: int,
    parts: list[dict[str, Any]],
    pending_key: str | None,
    pending_bytes: int,
    completed: bool,
    sha256: str | None,
    head: bytes | None = None,
) -> bool:
    """Record the bytes a PATCH kept and release its lock; False if the lock or the offset moved under it
    (then nothing is recorded)."""
    values: dict[str, Any] = {
        "upload_offset": to_offset,
        "parts": parts,
        "pending_key": pending_key,
        "pending_bytes": pending_bytes,
        "lock_token": None,
        "locked_until": None,
        "updated_at": utcnow(),
    }
    if head is not None:
        values["head"] = head
    if completed:
        values |= {"state": UploadState.COMPLETED, "sha256": sha256}
    result = session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lock_token == token, Upload.upload_offset == from_offset)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_submitted(session: Session, upload_id: str, job_id: str) -> bool:
    """A completed upload became job ``job_id``; False if it was no longer completed (already a job, or
    deleted meanwhile)."""
    result = session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.state == UploadState.COMPLETED, Upload.job_id == job_id)
        .values(state=UploadState.SUBMITTED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_deleted(session: Session, upload_id: str) -> bool:
    """Terminate an upload that is not a job (its storage is removed next); whether it was."""
    result = session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.state.in_([UploadState.RECEIVING, UploadState.COMPLETED]))
        .values(state=UploadState.DELETED, lock_token=None, locked_until=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def delete_upload(session: Session, upload_id: str) -> None:
    """Forget an upload whose storage is gone (or belongs to its job)."""
    session.execute(delete(Upload).where(Upload.id == upload_id))


def uploads_to_sweep(session: Session, now: datetime, limit: int) -> Sequence[Upload]:
    """Deleted uploads (storage still to clean) and expired ones, oldest expiry first. An expired upload
    that a PATCH still holds is left for a later sweep."""
    return session.scalars(
        select(Upload)
        .where(
            or_(
                Upload.state == UploadState.DELETED,
                Upload.expires_at < now,
            ),
            or_(Upload.lock_token.is_(None), Upload.locked_until < now),
        )
        .order_by(Upload.expires_at)
        .limit(limit)
    ).all()


def claim_expired(session: Session, upload_id: str, state: str) -> bool:
    """Mark an expired upload deleted before its storage is removed (fenced on the state seen)."""
    result = session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.state == state)
        .values(state=UploadState.DELETED, lock_token=None, locked_until=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def known_multiparts(session: Session, multipart_ids: Sequence[str]) -> set[str]:
    """Which of these S3 multipart upload ids an upload row refers to."""
    if not multipart_ids:
        return set()
    rows = session.scalars(select(Upload.multipart_id).where(Upload.multipart_id.in_(list(multipart_ids))))
    return {value for value in rows if value is not None}
