"""All SQL for batches and their items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from pagemill.jobs.repository import ACTIVE_STATES
from pagemill.models import Batch, BatchItem, Job


def add_batch(session: Session, batch: Batch, items: Sequence[BatchItem]) -> None:
    """Insert a batch and its items."""
    session.add(batch)
    session.flush()  # the batch row before the items (and jobs) that refer to it
    session.add_all(items)


def get_tenant_batch(session: Session, tenant_id: str, batch_id: str) -> Batch | None:
    """A batch by id if it belongs to ``tenant_id``, or None."""
    batch = session.get(Batch, batch_id)
    return batch if batch is not None and batch.tenant_id == tenant_id else None


def list_batches(
    session: Session, *, tenant_id: str, limit: int, after: tuple[datetime, str] | None
) -> Sequence[Batch]:
    """A tenant's batches newest first, after a (created_at, id) cursor."""
    query = (
        select(Batch)
        .where(Batch.tenant_id == tenant_id)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(limit)
    )
    if after is not None:
        created_at, batch_id = after
        query = query.where(
            or_(Batch.created_at < created_at, and_(Batch.created_at == created_at, Batch.id < batch_id))
        )
    return session.scalars(query).all()


class ItemRow(NamedTuple):
    """An item with its job's columns (None for a refused item)."""

    item: BatchItem
    job: Job | None


def items_with_jobs(session: Session, batch_id: str) -> list[ItemRow]:
    """The batch's items in submission order, each with its job."""
    rows = session.execute(
        select(BatchItem, Job)
        .outerjoin(Job, Job.id == BatchItem.job_id)
        .where(BatchItem.batch_id == batch_id)
        .order_by(BatchItem.position)
    ).all()
    return [ItemRow(item, job) for item, job in rows]


def active_job_ids(session: Session, batch_id: str) -> list[str]:
    """Ids of the batch's jobs that are still queued or running."""
    return [
        str(job_id)
        for job_id in session.scalars(
            select(Job.id).where(Job.batch_id == batch_id, Job.state.in_(ACTIVE_STATES))
        ).all()
    ]


ItemError = tuple[str, str, dict[str, Any]]
"""Why an item was refused: code, message, details."""


def record_outcomes(
    session: Session, batch_id: str, outcomes: dict[int, tuple[str | None, ItemError | None]]
) -> None:
    """Record on items submitted after the batch (by position) their job, linked to the batch (unless it
    already belongs to another: an upload that became a job before), or their error."""
    refused = 0
    for position, (job_id, error) in outcomes.items():
        values: dict[str, object] = {"job_id": job_id}
        if error is not None:
            refused += 1
            values.update(error_code=error[0], error_message=error[1], error_details=error[2])
        session.execute(
            update(BatchItem)
            .where(BatchItem.batch_id == batch_id, BatchItem.position == position)
            .values(**values)
        )
        if job_id is not None:
            session.execute(
                update(Job).where(Job.id == job_id, Job.batch_id.is_(None)).values(batch_id=batch_id)
            )
    if refused:
        session.execute(
            update(Batch).where(Batch.id == batch_id).values(items_refused=Batch.items_refused + refused)
        )
