"""All SQL of page claims and the fair scheduler: which page a worker reads next, and who holds which.

A claim is a random id written on the pages a worker takes (with its expiry); every write of the page's
outcome is fenced on it, so a worker whose claim lapsed (and was taken by another) commits nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.orm import Session

from pagemill.models import Job, JobState, Page, PageState

ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)


class WaitingJob(NamedTuple):
    """A job with pages waiting on a queue, as the scheduler sees it."""

    id: str
    tenant_id: str
    priority: int
    created_at: datetime
    last_claimed_at: datetime | None
    pages_total: int | None = None


@dataclass(frozen=True)
class ClaimedPages:
    """Pages one worker took: the job, the pages with their attempts before this claim, and what reading
    them takes (OCR or the text pass first; where OCR starts in the engine chain)."""

    claim_id: str
    job_id: str
    pages: list[tuple[int, int]]
    ocr: bool
    chain_start: int
    priority: int = 0

    @property
    def indices(self) -> list[int]:
        """The claimed page indices, in order."""
        return [index for index, _ in self.pages]


# The columns that say a page is held: cleared when its claim ends without the page being finished.
_UNCLAIMED: dict[str, Any] = {"claim_id": None, "claimed_by": None, "claim_expires_at": None}


def _claimable(queue_name: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        Page.queue == queue_name,
        Page.state == PageState.PENDING,
        Page.claim_id.is_(None),
        or_(Page.not_before.is_(None), Page.not_before <= now),
    ]


def waiting_jobs(session: Session, queue_name: str, now: datetime, limit: int = 200) -> list[WaitingJob]:
    """Active jobs with pages on ``queue_name`` that no worker holds and that may be read now, highest
    priority first, then oldest (at most ``limit``)."""
    with_pages = select(Page.job_id).where(*_claimable(queue_name, now)).distinct().scalar_subquery()
    rows = session.execute(
        select(Job.id, Job.tenant_id, Job.priority, Job.created_at, Job.last_claimed_at, Job.pages_total)
        .where(Job.id.in_(with_pages), Job.state.in_(ACTIVE_STATES))
        .order_by(Job.priority.desc(), Job.created_at)
        .limit(limit)
    ).all()
    return [WaitingJob(*row) for row in rows]


def claimable_work(session: Session, queue_name: str, now: datetime) -> list[tuple[str, int, bool, int]]:
    """(job id, priority, ocr, pages) of pages on ``queue_name`` that could be claimed now, per job."""
    rows = session.execute(
        select(Page.job_id, Job.priority, Page.ocr, func.count())
        .join(Job, Job.id == Page.job_id)
        .where(*_claimable(queue_name, now), Job.state.in_(ACTIVE_STATES))
        .group_by(Page.job_id, Job.priority, Page.ocr)
    ).all()
    return [(str(job_id), int(priority), bool(ocr), int(n)) for job_id, priority, ocr, n in rows]


def pages_held_by_tenant(session: Session, queue_name: str, tenant_ids: Sequence[str]) -> dict[str, int]:
    """How many pages on ``queue_name`` each of these tenants has claimed (being read now)."""
    rows = session.execute(
        select(Job.tenant_id, func.count())
        .select_from(Page)
        .join(Job, Job.id == Page.job_id)
        .where(
            Page.queue == queue_name,
            Page.state == PageState.PENDING,
            Page.claim_id.is_not(None),
            Job.tenant_id.in_(list(tenant_ids)),
        )
        .group_by(Job.tenant_id)
    ).all()
    return {str(tenant): int(count) for tenant, count in rows}


def claim_pages(
    session: Session,
    job: WaitingJob,
    queue_name: str,
    *,
    claim_id: str,
    claimed_by: str,
    now: datetime,
    expires_at: datetime,
    max_pages: int,
    max_attempts: int,
) -> ClaimedPages | None:
    """Claim the job's first claimable pages on ``queue_name``: one page that was tried before (so only a
    page that kills its worker collects attempts), else up to ``max_pages`` never tried and read the same
    way. Counts an attempt on each (not past ``max_attempts``: such a page is given up, not read). None if
    another worker took them first."""
    job_id = job.id

    def lock_claimable(limit: int) -> list[Any]:
        # Postgres: workers choosing the same job at once take different pages instead of queueing on the
        # first one's row locks; each locks only what it may take, so a GPU worker's 128 threads claiming
        # one page each do not lock each other out. SQLite has one writer at a time (and ignores this).
        return list(
            session.execute(
                select(Page.index.label("page"), Page.attempts, Page.ocr, Page.chain_start)
                .where(Page.job_id == job_id, *_claimable(queue_name, now))
                .order_by(Page.index)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
        )

    candidates = lock_claimable(1)
    if not candidates:
        return None
    first = candidates[0]
    if first.attempts > 0 or first.ocr or max_pages == 1:
        chosen = [first]
    else:
        more = [row for row in lock_claimable(max_pages) if row.page != first.page]
        chosen = [first] + [
            row for row in more if row.attempts == 0 and not row.ocr and row.chain_start == first.chain_start
        ]
        if (job.pages_total or 0) > max_pages and len(chosen) > TAIL_MIN_PAGES:
            left = _claimable_left(session, job_id, queue_name, now, limit=2 * max_pages)
            chosen = chosen[: tail_share(left, max_pages)]
    taken = session.execute(
        update(Page)
        .where(
            Page.job_id == job_id,
            Page.index.in_([row.page for row in chosen]),
            Page.state == PageState.PENDING,
            Page.claim_id.is_(None),
        )
        .values(
            claim_id=claim_id,
            claimed_by=claimed_by,
            claim_expires_at=expires_at,
            attempts=case((Page.attempts >= max_attempts, Page.attempts), else_=Page.attempts + 1),
        )
        .returning(Page.index)
    ).all()
    if not taken:
        return None
    indices = {int(row[0]) for row in taken}
    # A worker taking the job's pages is the job moving: the sweeper's count of fruitless re-enqueues starts
    # again (a page that keeps failing is bounded by its attempts instead).
    session.execute(update(Job).where(Job.id == job_id).values(last_claimed_at=now, requeues=0))
    return ClaimedPages(
        claim_id=claim_id,
        job_id=job_id,
        pages=[(int(row.page), int(row.attempts)) for row in chosen if row.page in indices],
        ocr=bool(first.ocr),
        chain_start=int(first.chain_start),
        priority=job.priority,
    )


TAIL_MIN_PAGES = 16
"""The smallest share :func:`tail_share` cuts a big job's last pages into."""


def tail_share(left: int, max_pages: int) -> int:
    """How many pages one claim takes when ``left`` pages of a big job (more than one claim's worth) are
    still claimable: a full claim while two more fit, then half of what is left (down to
    :data:`TAIL_MIN_PAGES`), so the workers on the job finish together instead of one reading a last full
    claim alone while the others wait for the job's end (its result is assembled only then)."""
    if left >= 2 * max_pages:
        return max_pages
    if left <= 2 * TAIL_MIN_PAGES:
        return max(left, 1)
    return max(TAIL_MIN_PAGES, -(-left // 2))


def _claimable_left(session: Session, job_id: str, queue_name: str, now: datetime, *, limit: int) -> int:
    """The job's pages claimable on ``queue_name`` now, counted up to ``limit``."""
    window = select(Page.index).where(Page.job_id == job_id, *_claimable(queue_name, now)).limit(limit)
    return int(session.scalar(select(func.count()).select_from(window.subquery())) or 0)


def renew_claims(session: Session, claim_ids: Sequence[str], expires_at: datetime) -> set[str]:
    """Extend these claims to ``expires_at``; the ids still held (a claim the sweeper released is gone)."""
    if not claim_ids:
        return set()
    rows = session.execute(
        update(Page)
        .where(Page.claim_id.in_(list(claim_ids)), Page.state == PageState.PENDING)
        .values(claim_expires_at=expires_at)
        .returning(Page.claim_id)
    ).all()
    return {str(row[0]) for row in rows}


def release_claim(session: Session, claim_id: str) -> list[str]:
    """Give back the pages of a claim still pending (read by nobody now; offered again): their queues."""
    rows = session.execute(
        update(Page)
        .where(Page.claim_id == claim_id, Page.state == PageState.PENDING)
        .values(**_UNCLAIMED)
        .returning(Page.queue)
    ).all()
    return [str(row[0] or "cpu") for row in rows]


def defer_pages(
    session: Session, claim_id: str, indices: Sequence[int], not_before: datetime
) -> list[tuple[int, int]]:
    """Give back pages whose engines were unavailable, not to be read before ``not_before``; their attempt
    is taken back (an outage is not the page's fault) and one more deferral counted. (index, deferrals)."""
    rows = session.execute(
        update(Page)
        .where(Page.claim_id == claim_id, Page.index.in_(list(indices)), Page.state == PageState.PENDING)
        .values(
            **_UNCLAIMED,
            not_before=not_before,
            deferrals=Page.deferrals + 1,
            attempts=Page.attempts - 1,
        )
        .returning(Page.index, Page.deferrals)
    ).all()
    return [(int(index), int(deferrals)) for index, deferrals in rows]


def deferrals(session: Session, job_id: str, indices: Sequence[int]) -> list[tuple[int, int]]:
    """(index, deferrals so far) of these pages."""
    rows = session.execute(
        select(Page.index, Page.deferrals).where(Page.job_id == job_id, Page.index.in_(list(indices)))
    ).all()
    return [(int(index), int(count)) for index, count in rows]


def hand_to_ocr(
    session: Session, claim_id: str, indices: Sequence[int], queue_name: str, chain_start: int
) -> int:
    """Pages the text pass found without a usable text layer: released, marked for OCR on ``queue_name``,
    their attempt taken back (they were not read). How many."""
    result = session.execute(
        update(Page)
        .where(Page.claim_id == claim_id, Page.index.in_(list(indices)), Page.state == PageState.PENDING)
        .values(
            **_UNCLAIMED,
            ocr=True,
            queue=queue_name,
            chain_start=chain_start,
            attempts=Page.attempts - 1,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def route_pending_pages(
    session: Session, job_id: str, *, text_first: bool, ocr_queue: str, chain_start: int
) -> None:
    """Say where the job's unclaimed pending pages are read (at planning, and again at a re-plan after a
    lost message, when the OCR route follows engine health now): pages for the text pass on the CPU queue
    (``text_first``), pages needing OCR on ``ocr_queue`` from ``chain_start`` of the engine chain."""
    unclaimed = [Page.job_id == job_id, Page.state == PageState.PENDING, Page.claim_id.is_(None)]
    if not text_first:
        session.execute(update(Page).where(*unclaimed, Page.ocr.is_(False)).values(ocr=True))
    else:
        session.execute(
            update(Page).where(*unclaimed, Page.ocr.is_(False)).values(queue="cpu", chain_start=0)
        )
    session.execute(
        update(Page).where(*unclaimed, Page.ocr.is_(True)).values(queue=ocr_queue, chain_start=chain_start)
    )


def unclaimed_work(session: Session, job_id: str) -> list[tuple[str, bool, int]]:
    """(queue, ocr, pages) for the job's pending pages that no worker holds: how many tasks to send."""
    rows = session.execute(
        select(Page.queue, Page.ocr, func.count())
        .where(Page.job_id == job_id, Page.state == PageState.PENDING, Page.claim_id.is_(None))
        .group_by(Page.queue, Page.ocr)
    ).all()
    return [(str(queue_name), bool(ocr), int(count)) for queue_name, ocr, count in rows if queue_name]


def claim_holders(session: Session, host_prefix: str) -> list[str]:
    """Workers (``host:pid``) on one host holding claims now."""
    rows = session.execute(
        select(Page.claimed_by)
        .where(
            Page.claim_id.is_not(None),
            Page.state == PageState.PENDING,
            Page.claimed_by.startswith(host_prefix),
        )
        .distinct()
    ).all()
    return [str(row[0]) for row in rows]


def release_claims_of(session: Session, holder: str) -> list[tuple[str, str, int]]:
    """Release every claim of ``holder`` (a process known to be dead): (job id, queue, priority) per page."""
    return _release(session, Page.claimed_by == holder, Page.claim_id.is_not(None))


def _release(session: Session, *held: ColumnElement[bool]) -> list[tuple[str, str, int]]:
    """Release the pending pages matching ``held`` in one fenced update: (job id, queue, priority) each."""
    rows = session.execute(
        update(Page)
        .where(*held, Page.state == PageState.PENDING)
        .values(**_UNCLAIMED)
        .returning(Page.job_id, Page.queue)
    ).all()
    return _with_priorities(session, [(str(job_id), str(queue_name or "cpu")) for job_id, queue_name in rows])


def _with_priorities(session: Session, pages: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    jobs = sorted({job_id for job_id, _ in pages})
    rows = session.execute(select(Job.id, Job.priority).where(Job.id.in_(jobs))).all()
    priorities = {str(job_id): int(priority) for job_id, priority in rows}
    return [(job_id, queue_name, int(priorities.get(job_id, 0))) for job_id, queue_name in pages]


def release_lapsed_claims(session: Session, now: datetime) -> list[tuple[str, str, int]]:
    """Release claims that were not renewed before ``now`` (their worker died or hangs): (job id, queue,
    priority) per released page, so that a task can be sent for each. One update fenced on the expiry:
    of several sweepers, one releases each page."""
    return _release(session, Page.claim_expires_at < now)
