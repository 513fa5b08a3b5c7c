"""All SQL of the operations view: what waits on each queue, and a job's kind and times.

Each backlog question is one aggregate over an index: a page queue's unclaimed pending pages
(``ix_pages_queue_state_claim``, grouped by job, then the jobs' rows), the queued jobs
(``ix_jobs_state_created``) and the webhook deliveries due (``ix_webhook_deliveries_state_next``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session

from pagemill.models import DeliveryState, Job, JobState, Page, PageState, WebhookDelivery
from pagemill.models.base import UtcDateTime

_ACTIVE = (JobState.QUEUED, JobState.RUNNING)
_OPEN_DELIVERIES = (DeliveryState.PENDING, DeliveryState.FAILED)


class Backlog(NamedTuple):
    """What waits on a queue: how much, and since when the longest-waiting of it has waited (None: nothing
    waits)."""

    depth: int
    waiting_since: datetime | None


class JobTiming(NamedTuple):
    """A job's document kind (None until a URL job's document is fetched) and its times."""

    kind: str | None
    created_at: datetime
    finished_at: datetime | None


def page_backlog(session: Session, queue: str) -> Backlog:
    """Pages of active jobs waiting on ``queue`` (pending, claimed by no worker; those waiting out a backoff
    too), and since when the job waiting longest was last served: the last time a worker claimed its pages,
    or when it started if none ever did. A job read steadily stays young however many pages it has left;
    one no worker takes ages, which is the lag worth an alert."""
    waiting = (
        select(Page.job_id, func.count().label("pages"))
        .where(Page.queue == queue, Page.state == PageState.PENDING, Page.claim_id.is_(None))
        .group_by(Page.job_id)
        .subquery()
    )
    served = type_coerce(func.coalesce(Job.last_claimed_at, Job.started_at, Job.created_at), UtcDateTime)
    depth, since = session.execute(
        select(func.coalesce(func.sum(waiting.c.pages), 0), func.min(served))
        .select_from(waiting)
        .join(Job, Job.id == waiting.c.job_id)
        .where(Job.state.in_(_ACTIVE))
    ).one()
    return Backlog(int(depth), since)


def ingest_backlog(session: Session) -> Backlog:
    """Jobs waiting to be opened and planned (state queued), since the oldest's submission."""
    depth, since = session.execute(
        select(func.count(), func.min(Job.created_at)).where(Job.state == JobState.QUEUED)
    ).one()
    return Backlog(int(depth), since)


def webhook_backlog(session: Session, now: datetime) -> Backlog:
    """Webhook deliveries whose next attempt is due, since the one due longest. Deliveries waiting out a
    retry's backoff are not due, so not counted: they wait on purpose."""
    depth, since = session.execute(
        select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.state.in_(_OPEN_DELIVERIES), WebhookDelivery.next_attempt_at <= now
        )
    ).one()
    return Backlog(int(depth), since)


def job_timing(session: Session, job_id: str) -> JobTiming | None:
    """The job's kind, submission and end times as this transaction sees them; None if there is no such
    job."""
    row = session.execute(select(Job.kind, Job.created_at, Job.finished_at).where(Job.id == job_id)).first()
    return None if row is None else JobTiming(row.kind, row.created_at, row.finished_at)
