"""The worker's fetch step of a URL job: fetch the document through the SSRF guard, store it, describe it.

After this a URL job is exactly an uploaded one: :func:`pagemill.jobs.processing.ingest_job` goes on to
sniff nothing more (the kind is recorded here, from the content), open, check and plan it.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable
from typing import IO
from urllib.parse import unquote

import httpx

from pagemill.db import session_scope
from pagemill.documents.kinds import sniff_file
from pagemill.egress.fetch import Fetched, FetchLimits, fetch_to
from pagemill.egress.guard import EgressPolicy, Resolver, system_resolver
from pagemill.errors import UrlFetchFailed
from pagemill.jobs import repository as repo
from pagemill.jobs import source_repository
from pagemill.jobs.service import source_key
from pagemill.jobs.submission import sanitize_filename
from pagemill.models import Job
from pagemill.settings import Settings
from pagemill.storage import get_blob_store

log = logging.getLogger(__name__)


def fetch_source(
    job: Job,
    settings: Settings,
    *,
    resolver: Resolver = system_resolver,
    sleep: Callable[[float], None] = time.sleep,
) -> Job:
    """Fetch a URL job's document, store it as the job's original and record its name, kind, size and
    SHA-256; the updated job.

    Raises the fetch's UrlFetchFailed (after ``egress.fetch_attempts`` for transient failures), or
    EmptyFile / UnsupportedType when what came back is not a document Pagemill reads."""
    assert job.source_url is not None
    cap = job.source_max_bytes or settings.limits.max_upload_bytes
    limits = FetchLimits.from_settings(settings.egress, max_bytes=cap)
    policy = EgressPolicy.from_settings(settings.egress)
    with tempfile.TemporaryFile(prefix="pagemill-fetch-") as spool:
        fetched = fetch_with_retries(
            job.source_url,
            spool,
            policy=policy,
            limits=limits,
            attempts=settings.egress.fetch_attempts,
            backoff_s=settings.egress.retry_backoff_s,
            resolver=resolver,
            sleep=sleep,
        )
        spool.seek(0)
        kind = sniff_file(spool)
        spool.seek(0)
        get_blob_store().put_file(source_key(job.id), spool, content_type=kind.media_type)
    with session_scope() as session:
        recorded = source_repository.record_fetched(
            session,
            job.id,
            filename=filename_of(fetched.url),
            kind=kind.value,
            size_bytes=fetched.size,
            sha256=fetched.sha256,
        )
        updated = repo.get_job(session, job.id)
    log.info(
        "job %s: fetched %d bytes (%s) from its URL after %d redirect(s)%s",
        job.id,
        fetched.size,
        kind.value,
        fetched.redirects,
        "" if recorded else "; already recorded by another delivery",
    )
    assert updated is not None
    return updated


def fetch_with_retries(
    url: str,
    spool: IO[bytes],
    *,
    policy: EgressPolicy,
    limits: FetchLimits,
    attempts: int,
    backoff_s: float,
    resolver: Resolver = system_resolver,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """:func:`pagemill.egress.fetch.fetch_to` into ``spool`` (emptied before each attempt), tried again after
    a transient failure with exponential backoff and jitter, at most ``attempts`` times. The last failure
    is raised with ``details.attempts``."""
    for attempt in range(1, attempts + 1):
        spool.seek(0)
        spool.truncate()
        try:
            return fetch_to(url, spool, policy=policy, limits=limits, resolver=resolver)
        except UrlFetchFailed as exc:
            if not exc.transient or attempt == attempts:
                exc.details["attempts"] = attempt
                raise
            # Full jitter around the doubled delay: fetches of one failing host do not retry in step.
            delay = backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            log.warning(
                "fetch attempt %d/%d failed (%s %s); retrying in %.1fs",
                attempt,
                attempts,
                exc.code,
                exc.details.get("reason"),
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def filename_of(url: str) -> str:
    """A display name for a fetched document: the last segment of its URL's path, else its host."""
    parsed = httpx.URL(url)
    last = unquote(parsed.path.rstrip("/").rsplit("/", 1)[-1])
    return sanitize_filename(last or parsed.host)
