"""All SQL of the result cache: finding an earlier job of the same document, and holding the job whose page
rows and results a cached job uses while it is adopted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pagemill.models import Job, JobState


def cache_candidates(
    session: Session, tenant_id: str, sha256: str, *, finished_after: datetime, limit: int = 20
) -> Sequence[Job]:
    """The tenant's succeeded jobs of the document ``sha256`` that finished after ``finished_after``,
    newest first (their options are compared by the caller: JSON equality is not portable SQL)."""
    return session.scalars(
        select(Job)
        .where(
            Job.tenant_id == tenant_id,
            Job.sha256 == sha256,
            Job.state == JobState.SUCCEEDED,
            Job.finished_at >= finished_after,
            Job.pages_total.is_not(None),
            Job.retiring_at.is_(None),
        )
        .order_by(Job.finished_at.desc())
        .limit(limit)
    ).all()


def lock_page_owner(session: Session, owner_id: str) -> bool:
    """Lock the job that owns the page rows and result blobs a cached job will use, until the transaction
    ends; False if it no longer owns them, or is about to lose them (retiring: retention or a purge is
    deleting its blobs).

    The lock orders this against the retirement of the owner, which updates the same row first: either
    that commits before (then this sees it and says False) or it waits, and then finds the new job among
    the owner's users, to hand its rows and results over to (pagemill.retention.service)."""
    row = session.execute(
        select(Job.state, Job.pages_from, Job.retiring_at).where(Job.id == owner_id).with_for_update()
    ).first()
    return (
        row is not None
        and row.state == JobState.SUCCEEDED
        and row.pages_from is None
        and row.retiring_at is None
    )
