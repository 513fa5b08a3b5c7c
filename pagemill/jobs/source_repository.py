"""SQL for a URL job's source: recording the document the worker fetched."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from pagemill.models import Job
from pagemill.models.base import utcnow


def record_fetched(
    session: Session, job_id: str, *, filename: str, kind: str, size_bytes: int, sha256: str
) -> bool:
    """Describe a URL job's fetched document; False if it was described already (a duplicate delivery of
    the job's task fetched it first: its description stands)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.sha256.is_(None))
        .values(filename=filename, kind=kind, size_bytes=size_bytes, sha256=sha256, updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
