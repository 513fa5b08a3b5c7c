"""Page claims and fair scheduling: which pages a worker reads next, and keeping them while it reads.

A page task's message names only a queue: it is one unit of work for that pool, not a given page. The
worker that receives it asks the database for the next pages to read (:func:`claim_next`):

* highest priority first (the tier, fixed at submission);
* within a priority, the tenant with the fewest pages being read on this queue now, then the tenant whose
  jobs were served longest ago, so one tenant's 10,000-page job does not starve another's one page
  (round robin between tenants);
* within a tenant, its oldest job; within a job, its first pages.

The claim is heartbeated (every third of ``worker.claim_ttl_s``) by a thread of the process holding it. A
worker killed mid-page stops renewing, and the sweeper offers its pages again once the claim lapses: the
job moves again within ``claim_ttl_s + sweep_interval_s``, whatever the broker does with the lost message.
Writes of a page's outcome are fenced on the claim, so a worker that lost its claim (paused past its
expiry, say) commits nothing, and a duplicate message (a broker redelivery) finds no page to take.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pagemill import queue
from pagemill.db import session_scope
from pagemill.jobs import claim_repository as claims_repo
from pagemill.jobs.claim_repository import ClaimedPages, WaitingJob
from pagemill.models.base import utcnow
from pagemill.settings import Settings

log = logging.getLogger(__name__)

# A try fails only when other claimers took every candidate between its look and its claim, so each lost
# try means another worker got work. Eight claimers racing over SQLite (whose readers see the snapshot
# their transaction began with) lost five tries in a row often enough to answer "nothing waiting" while
# pages waited; a try costs two queries.
_CLAIM_TRIES = 20
_EPOCH = datetime.min


def worker_name() -> str:
    """Who holds a claim, for people reading the pages table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def tasks_for(pages: int, ocr: bool, settings: Settings) -> int:
    """Page tasks that ``pages`` waiting pages need: one per OCR page, one per chunk of
    ``worker.pages_per_task`` text-layer pages."""
    return pages if ocr else -(-pages // settings.worker.pages_per_task)


def fair_order(jobs: list[WaitingJob], held: dict[str, int]) -> list[WaitingJob]:
    """``jobs`` in the order the scheduler offers them (see the module docstring)."""
    served: dict[str, datetime] = {}
    for job in jobs:
        last = job.last_claimed_at.replace(tzinfo=None) if job.last_claimed_at else _EPOCH
        served[job.tenant_id] = max(served.get(job.tenant_id, _EPOCH), last)
    return sorted(
        jobs,
        key=lambda job: (
            -job.priority,
            held.get(job.tenant_id, 0),
            served[job.tenant_id],
            job.created_at.replace(tzinfo=None),
        ),
    )


def claim_next(queue_name: str, settings: Settings, *, max_pages: int | None = None) -> ClaimedPages | None:
    """Claim the next pages to read on ``queue_name`` (text-pass pages up to ``worker.pages_per_task`` of
    one job, an OCR page alone), or None when nothing is waiting there."""
    max_pages = max_pages or settings.worker.pages_per_task
    for _ in range(_CLAIM_TRIES):
        now = utcnow()
        with session_scope() as session:
            waiting = claims_repo.waiting_jobs(session, queue_name, now)
            if not waiting:
                return None
            tenants = sorted({job.tenant_id for job in waiting})
            # One tenant waiting (the common case): nothing to share, no need to count what it holds.
            held = claims_repo.pages_held_by_tenant(session, queue_name, tenants) if len(tenants) > 1 else {}
            for job in fair_order(waiting, held)[:3]:
                claim = claims_repo.claim_pages(
                    session,
                    job,
                    queue_name,
                    claim_id=uuid.uuid4().hex,
                    claimed_by=worker_name(),
                    now=now,
                    expires_at=now + timedelta(seconds=settings.worker.claim_ttl_s),
                    max_pages=max_pages,
                    max_attempts=settings.worker.max_attempts,
                )
                if claim is not None:
                    return claim
        # Every candidate was taken by other workers between our look and our claim: look again.
    return None


def holder_alive(holder: str) -> bool:
    """Whether the process named by ``holder`` (``host:pid``, on this host) still runs."""
    try:
        pid = int(holder.rsplit(":", 1)[1])
    except (ValueError, IndexError):
        return True  # not a name this version writes: leave it to its claim's expiry
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie not yet reaped still does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Heartbeat:
    """Renews the claims this process holds, from one daemon thread (started on first use, per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, float] = {}
        self._lost: set[str] = set()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()
        # Claims whose pages could not be given back (the database was away): retried at each beat, so the
        # pages are offered again when it is back instead of after the claim's time to live.
        self._unreleased: dict[str, int] = {}

    def hold(self, claim_id: str, ttl_s: int) -> None:
        """Start renewing ``claim_id`` every third of ``ttl_s``."""
        with self._lock:
            self._held[claim_id] = ttl_s
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # After a fork the parent's thread does not exist in the child: start this process's own.
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="pagemill-claims", daemon=True)
                self._thread.start()

    def drop(self, claim_id: str) -> None:
        """Stop renewing ``claim_id`` (its pages are finished or given back)."""
        with self._lock:
            self._held.pop(claim_id, None)
            self._lost.discard(claim_id)

    def release_later(self, claim_id: str, priority: int) -> None:
        """Give back ``claim_id``'s pending pages at the next beat that reaches the database."""
        with self._lock:
            self._unreleased[claim_id] = priority

    def lost(self, claim_id: str) -> bool:
        """Whether the claim lapsed and was released (the pages may be read by another worker now)."""
        with self._lock:
            return claim_id in self._lost

    def _run(self) -> None:
        while True:
            with self._lock:
                held = dict(self._held)
                unreleased = dict(self._unreleased)
            interval = min(held.values(), default=30) / 3
            self._wake.wait(min(interval, 2.0) if unreleased else interval)
            if held:
                self.renew(held)
            if unreleased:
                self._release(unreleased)

    def renew(self, held: dict[str, float]) -> None:
        """Renew every held claim once (the thread's loop; tests call it directly)."""
        ttl = max(held.values())
        try:
            with session_scope() as session:
                kept = claims_repo.renew_claims(session, list(held), utcnow() + timedelta(seconds=ttl))
        except Exception:  # a database blip: the next beat tries again, well within the claim's life
            log.warning("renewing %d page claim(s) failed", len(held), exc_info=True)
            return
        gone = set(held) - kept
        if gone:
            with self._lock:
                self._lost |= gone & set(self._held)

    def _release(self, unreleased: dict[str, int]) -> None:
        for claim_id, priority in unreleased.items():
            try:
                give_back(claim_id, priority)
            except Exception:  # still away: the next beat tries again (or the claim lapses first)
                return
            with self._lock:
                self._unreleased.pop(claim_id, None)


HEARTBEAT = Heartbeat()


@dataclass
class Hold:
    """A claim being read (:func:`holding`)."""

    settled: bool = False
    """Set by the reader once every page of the claim was saved or handed on: nothing is left to give back,
    and the statement that would look is spared."""


@contextmanager
def holding(claim: ClaimedPages, settings: Settings) -> Iterator[Hold]:
    """Keep ``claim`` alive while the block reads its pages; whatever is still pending at the end (an
    error, a cancel, pages not reached) is given back, unless the block said the claim was settled."""
    hold = Hold()
    HEARTBEAT.hold(claim.claim_id, settings.worker.claim_ttl_s)
    try:
        yield hold
    finally:
        HEARTBEAT.drop(claim.claim_id)
        if not hold.settled:
            _give_back_soon(claim)


def _give_back_soon(claim: ClaimedPages) -> None:
    try:
        give_back(claim.claim_id, claim.priority)
    except Exception:  # the database is away: the heartbeat gives the pages back once it is back
        log.warning("giving back claim %s failed; retrying in the background", claim.claim_id)
        HEARTBEAT.release_later(claim.claim_id, claim.priority)


def give_back(claim_id: str, priority: int) -> None:
    """Release a claim's pages still pending, with one page task each (the message that brought the claim
    is spent), so they are read again now rather than after the claim lapses."""
    with session_scope() as session:
        for queue_name in claims_repo.release_claim(session, claim_id):
            queue.enqueue_page_tasks(session, queue_name, 1, priority=priority)
