"""Writing events: each in the transaction of the change it reports (the outbox).

Call these inside the session that changes the job; they never commit. Every function reads what the
event says about its job in the same statement that numbers it, so an event never reports a state its
transaction did not see.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from pagemill.events import repository as repo
from pagemill.events import routing
from pagemill.events.repository import JobSnapshot
from pagemill.events.types import ENDED_BY_STATE, EventType
from pagemill.jobs import repository as jobs_repo
from pagemill.models import Event, JobState, PageState
from pagemill.models.base import utcnow
from pagemill.observability import job_metrics
from pagemill.settings import Settings, get_settings


@dataclass(frozen=True)
class FinishedPage:
    """A page saved just now, for its job.page_completed event."""

    index: int
    state: PageState
    engine: str | None = None
    error_code: str | None = None


def job_event(session: Session, job_id: str, type_: EventType, *, settings: Settings | None = None) -> None:
    """Write one event of the job (any type but progress and page events, which have their own functions).

    A final event of a job in a batch also completes the batch when it was the batch's last active job."""
    settings = settings or get_settings()
    if not settings.events.enabled:
        return
    snapshot = repo.take_seqs(session, job_id)
    if snapshot is None:
        return
    now = utcnow()
    _write(session, settings, snapshot, [(snapshot.seq, type_, {})], now)
    if type_.is_final and snapshot.batch_id is not None:
        _complete_batch(session, settings, snapshot, now)


def job_ended(session: Session, job_id: str, state: JobState, *, settings: Settings | None = None) -> None:
    """Write the final event for a job that moved to ``state`` (succeeded, failed, cancelled, expired), and
    count the job's end (pagemill_jobs_completed_total, at commit): every end of a job passes here."""
    job_metrics.count_ended(session, job_id, state)
    job_event(session, job_id, ENDED_BY_STATE[state], settings=settings)


def job_progress(
    session: Session,
    job_id: str,
    *,
    settings: Settings | None = None,
    counts: jobs_repo.ProgressCounts | None = None,
) -> None:
    """Write a job.progress event if one is due (call after the job's counts were refreshed): at most one
    per ``events.progress_interval_s``, plus one for each further tenth of the pages finished.

    ``counts``, what :func:`pagemill.jobs.repository.refresh_progress` returned in this transaction, spares
    the statement when no event can be due (most saves of a fast job: a second has not passed)."""
    settings = settings or get_settings()
    if not settings.events.enabled:
        return
    now = utcnow()
    not_since = now - timedelta(seconds=settings.events.progress_interval_s)
    if counts is not None and not _progress_due(counts, not_since):
        return
    snapshot = repo.take_progress_seq(session, job_id, now=now, not_since=not_since)
    if snapshot is not None:
        _write(session, settings, snapshot, [(snapshot.seq, EventType.JOB_PROGRESS, {})], now)


def _progress_due(counts: jobs_repo.ProgressCounts, not_since: datetime) -> bool:
    """The condition of :func:`pagemill.events.repository.take_progress_seq`, on the counts at hand: when
    it is false here, that statement would change nothing."""
    finished, total = counts.pages_done + counts.pages_failed, counts.pages_total or 0
    if counts.state != JobState.RUNNING or total <= 0 or finished <= counts.progress_event_pages:
        return False
    tenth_crossed = finished * 10 // total > counts.progress_event_pages * 10 // total
    return counts.progress_event_at is None or counts.progress_event_at <= not_since or tenth_crossed


def pages_completed(
    session: Session,
    job_id: str,
    pages: Sequence[FinishedPage],
    *,
    finished_at: datetime,
    settings: Settings | None = None,
) -> None:
    """Write one job.page_completed event per page that this transaction finished (``finished_at``: the
    time it gave them; a page another delivery finished first is left out), when page events are wanted
    (events.page_events)."""
    settings = settings or get_settings()
    if not pages or not settings.events.enabled or not routing.wants_page_events(session, settings, job_id):
        return
    moved = jobs_repo.pages_finished_at(session, job_id, [page.index for page in pages], finished_at)
    pages = [page for page in pages if page.index in moved]
    if not pages:
        return
    snapshot = repo.take_seqs(session, job_id, len(pages))
    if snapshot is None:
        return
    first = snapshot.seq - len(pages) + 1
    events = [
        (first + n, EventType.JOB_PAGE_COMPLETED, {"page": _page_data(job_id, page)})
        for n, page in enumerate(sorted(pages, key=lambda p: p.index))
    ]
    _write(session, settings, snapshot, events, utcnow())


def _page_data(job_id: str, page: FinishedPage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": page.index + 1,
        "state": str(page.state),
        "url": f"/api/v1/jobs/{job_id}/pages/{page.index + 1}",
    }
    if page.engine is not None:
        data["engine"] = page.engine
    if page.error_code is not None:
        data["error_code"] = page.error_code
    return data


def job_data(snapshot: JobSnapshot, settings: Settings) -> dict[str, Any]:
    """The thin ``data`` of a job event: ids, state, page counts, error, and result URLs once succeeded."""
    data: dict[str, Any] = {
        "job_id": snapshot.job_id,
        "tenant_id": snapshot.tenant_id,
        "state": snapshot.state,
        "pages": {
            "total": snapshot.pages_total,
            "done": snapshot.pages_done,
            "failed": snapshot.pages_failed,
        },
        "error": None,
    }
    if snapshot.error_code is not None:
        data["error"] = {"code": snapshot.error_code, "message": snapshot.error_message or ""}
    if snapshot.batch_id is not None:
        data["batch_id"] = snapshot.batch_id
    if snapshot.cached_from is not None:
        data["cached_from"] = snapshot.cached_from
    if snapshot.state in (JobState.SUCCEEDED, JobState.CANCELLED) and snapshot.pages_done:
        base = (settings.events.public_base_url or "").rstrip("/")
        data["results"] = {
            fmt: f"{base}/api/v1/jobs/{snapshot.job_id}/result?format={fmt}" for fmt in snapshot.formats
        }
    return data


def _write(
    session: Session,
    settings: Settings,
    snapshot: JobSnapshot,
    events: Sequence[tuple[int, EventType, dict[str, Any]]],
    now: datetime,
) -> None:
    base = job_data(snapshot, settings)
    # Whether a sink wants an event depends on its type only here (one job: one tenant, one callback URL):
    # asked once per type, not once per page event.
    wanted = {
        type_: routing.wants(session, settings, snapshot.tenant_id, type_, snapshot.callback_url)
        for type_ in {type_ for _, type_, _ in events}
    }
    rows = [
        _row(
            tenant_id=snapshot.tenant_id,
            type_=type_,
            now=now,
            data={**base, **extra},
            wanted=wanted[type_],
            job_id=snapshot.job_id,
            batch_id=snapshot.batch_id,
            seq=seq,
        )
        for seq, type_, extra in events
    ]
    repo.add_events(session, rows)
    if any(wanted.values()):
        routing.relay_after_commit(session)


def _row(
    *,
    tenant_id: str,
    type_: EventType,
    now: datetime,
    data: dict[str, Any],
    wanted: bool,
    job_id: str | None = None,
    batch_id: str | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """An event's column values; one no sink wants is written relayed already."""
    return {
        "event_id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "job_id": job_id,
        "batch_id": batch_id,
        "seq": seq,
        "type": str(type_),
        "time": now,
        "data": data,
        "relayed_at": None if wanted else now,
    }


def tenant_event(
    session: Session,
    tenant_id: str,
    type_: EventType,
    data: dict[str, Any],
    *,
    relay: bool = True,
    settings: Settings | None = None,
) -> Event:
    """Write an event about the tenant rather than one job (webhook.disabled, webhook.ping); the row.

    ``relay=False`` writes it relayed already: its caller delivers it itself (a ping goes to one endpoint)."""
    settings = settings or get_settings()
    now = utcnow()
    wanted = relay and routing.wants(session, settings, tenant_id, type_, None)
    event = Event(
        event_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        type=str(type_),
        time=now,
        data={"tenant_id": tenant_id, **data},
        relayed_at=None if wanted else now,
    )
    repo.add_event(session, event)
    if wanted:
        routing.relay_after_commit(session)
    return event


def _complete_batch(session: Session, settings: Settings, snapshot: JobSnapshot, now: datetime) -> None:
    """Write batch.completed if the job that just ended was the batch's last active one. The batch row is
    locked first, then its jobs counted in a new statement: of two jobs ending at once, the second waits
    for the first's commit and then sees it final."""
    assert snapshot.batch_id is not None
    batch = repo.lock_batch(session, snapshot.batch_id)
    if batch is None:
        return
    states = repo.batch_job_states(session, batch.id)
    if states.get(JobState.QUEUED, 0) or states.get(JobState.RUNNING, 0):
        return
    if not repo.complete_batch(session, batch.id, now):
        return
    type_ = EventType.BATCH_COMPLETED
    wanted = routing.wants(session, settings, batch.tenant_id, type_, None)
    counts = {str(state): n for state, n in sorted(states.items())}
    data = {
        "batch_id": batch.id,
        "tenant_id": batch.tenant_id,
        "jobs": counts,
        "items_total": batch.items_total,
        "items_refused": batch.items_refused,
    }
    row = _row(tenant_id=batch.tenant_id, type_=type_, now=now, data=data, wanted=wanted, batch_id=batch.id)
    repo.add_events(session, [row])
    if wanted:
        routing.relay_after_commit(session)
