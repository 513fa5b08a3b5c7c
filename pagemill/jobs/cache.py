"""The result cache: a document submitted again by the same tenant with the same result options gets the
earlier job's results instead of page work.

Nothing is copied: the cached job reads the page rows and the result blobs of the job that owns them
(``pages_from``; its options, formats included, are the same), so a cache hit costs the same for 10 pages
as for 10,000, and on S3 makes no request at all. When that owner expires or is purged, its rows and
results pass to a cached job still using them (pagemill.retention.service), so retention or a purge of the
earlier job never breaks a later one. Never across tenants. A cached job still counts as a document for the
quota; it is marked by ``cached_from``.

A submission is matched on the SHA-256 of its bytes and its options (formats, page range, OCR mode,
engine: all of them shape the result), against jobs that succeeded within ``cache.ttl_s`` and are not
expired or being deleted. When the owner is found gone at adoption, the submission is simply processed
afresh, from its own original (stored then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from pagemill.jobs import cache_repository as repo
from pagemill.jobs.options import JobOptions
from pagemill.models import Job, JobState
from pagemill.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheSource:
    """The earlier job whose results a submission reuses, as read when it was found."""

    job_id: str
    pages_owner: str
    page_count: int | None
    pages_total: int
    pages_done: int
    pages_failed: int


def find_source(
    session: Session,
    settings: Settings,
    *,
    tenant_id: str,
    sha256: str,
    options: JobOptions,
    max_pages: int,
    now: datetime,
) -> CacheSource | None:
    """The newest job of this tenant whose results this submission may reuse, or None."""
    if not settings.cache.enabled:
        return None
    wanted = options.model_dump(mode="json")
    for job in repo.cache_candidates(
        session, tenant_id, sha256, finished_after=now - timedelta(seconds=settings.cache.ttl_s)
    ):
        # The tier may have shrunk since: a copy may not hold more pages than a fresh job could read.
        if job.options == wanted and job.pages_total is not None and job.pages_total <= max_pages:
            return CacheSource(
                job.id,
                job.pages_from or job.id,
                job.page_count,
                job.pages_total,
                job.pages_done,
                job.pages_failed,
            )
    return None


def adopt(session: Session, job: Job, source: CacheSource, now: datetime) -> bool:
    """Inside the submission's transaction: point the new ``job`` at the source's page rows and end it
    succeeded with the source's counts; False (nothing changed) if those rows are gone meanwhile."""
    session.flush()  # created_at, and the job row in place before the owner is locked
    if not repo.lock_page_owner(session, source.pages_owner):
        log.info("cache source %s lost its pages; %s is processed afresh", source.job_id, job.id)
        return False
    job.cached_from = source.job_id
    job.pages_from = source.pages_owner
    job.state = JobState.SUCCEEDED
    job.page_count = source.page_count
    job.pages_total = source.pages_total
    job.pages_done = source.pages_done
    job.pages_failed = source.pages_failed
    # Started and ended when it was created (the flush above set created_at): queued and running 0 ms.
    job.started_at = job.finished_at = job.updated_at = job.created_at or now
    job.document_password_sealed = None  # final jobs hold none
    # A cached job keeps no original (nothing would read it): said from the start, and retention has
    # nothing to delete.
    job.source_deleted_at = job.finished_at
    session.flush()
    return True
