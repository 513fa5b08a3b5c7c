"""A document answered from the result cache (pagemill.jobs.submission with pagemill.jobs.cache): it reads its
source's results in place, and nothing is stored or copied; when its source goes away between the lookup and
the answer, the job is read afresh, with its original stored before anyone is told to read it."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from pagemill import db
from pagemill.jobs import cache, submission
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs import service as jobs_service
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.jobs.service import result_key, source_key
from pagemill.models import Batch, BatchItem, Event, Job, JobState, Page, PageState, UsageCounter
from pagemill.models.base import utcnow
from pagemill.retention import repository as retention_repo
from pagemill.settings import Settings, get_settings
from pagemill.storage.local import LocalBlobStore
from pagemill.tenancy.principal import Actor, Principal
from pagemill.tenancy.repository import ensure_tenant
from tests.support import documents
from tests.support.factories import make_job

pytestmark = pytest.mark.integration

TENANT = "cache-tenant"
OPTIONS = JobOptions(formats=[OutputFormat.TEXT, OutputFormat.MARKDOWN])


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[str]:
    with db.session_scope() as session:
        for model in (Event, Page, BatchItem, Job, Batch, UsageCounter):
            session.execute(delete(model))
        ensure_tenant(session, TENANT, "enterprise")
    yield database


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def blob(store: LocalBlobStore, key: str) -> bytes:
    return b"".join(store.iter_chunks(key))


def cache_on() -> Settings:
    base = get_settings()
    return base.model_copy(update={"cache": base.cache.model_copy(update={"enabled": True})})


def read_job(pdf: bytes, store: LocalBlobStore) -> str:
    """A succeeded job of ``pdf`` with two done pages and its result blobs, as a worker leaves one."""
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        jobs_repo.add_job(
            session,
            make_job(
                job_id,
                tenant_id=TENANT,
                state=JobState.RUNNING,
                sha256=hashlib.sha256(pdf).hexdigest(),
                options=OPTIONS.model_dump(mode="json"),
                tier="enterprise",
            ),
        )
        jobs_repo.set_planned(session, job_id, 2, [0, 1])
        rows = [{"index": i, "text": f"page {i}", "markdown": f"page {i}"} for i in range(2)]
        jobs_repo.finish_pages(session, job_id, PageState.DONE, rows)
        jobs_repo.refresh_progress(session, job_id)
        jobs_repo.finish_job(session, job_id, JobState.SUCCEEDED)
    for fmt in OPTIONS.formats:
        store.put_bytes(result_key(job_id, fmt), f"{fmt} of {job_id}".encode())
    return job_id


def submit(pdf: bytes, store: LocalBlobStore, after_response: Callable[..., Any] | None = None) -> Job:
    job, replayed = submission.submit_document(
        db.session_scope,
        store,
        cache_on(),
        principal=Principal(tenant_id=TENANT, tier="enterprise", subject="test", rate_key="test"),
        actor=Actor(subject="test"),
        fileobj=io.BytesIO(pdf),
        filename="again.pdf",
        options=OPTIONS,
        password=None,
        after_response=after_response,
    )
    assert not replayed
    return job


def test_a_cache_hit_reads_the_source_results_in_place_and_stores_nothing(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    pdf = documents.make_text_pdf(tmp_path / "a.pdf", ["One", "Two"]).read_bytes()
    first = read_job(pdf, store)
    published: list[tuple[Any, ...]] = []
    job = submit(pdf, store, after_response=lambda *call: published.append(call))
    assert job.cached_from == first and job.state == JobState.SUCCEEDED
    actor = Actor(subject="test")
    with db.session_scope() as session:
        for fmt in OPTIONS.formats:
            chunks, _ = jobs_service.open_result(session, store, TENANT, job.id, fmt, actor=actor)
            assert b"".join(chunks) == f"{fmt} of {first}".encode()
    assert not (store.root / "jobs" / job.id).exists()  # no original, no copies
    assert job.source_deleted_at == job.finished_at is not None  # the API's original_deleted_at
    assert published == []  # nothing to read


@pytest.mark.parametrize("deferred", [True, False], ids=["published-after-response", "published-at-once"])
def test_a_source_purged_before_the_answer_leaves_a_job_read_from_its_own_original(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deferred: bool
) -> None:
    pdf = documents.make_text_pdf(tmp_path / "a.pdf", ["One", "Two"]).read_bytes()
    first = read_job(pdf, store)
    find_source = cache.find_source

    def find_then_purge(*args: Any, **kwargs: Any) -> cache.CacheSource | None:
        found = find_source(*args, **kwargs)
        with db.session_scope() as session:  # a purge retires the source between the lookup and the answer
            retention_repo.retire_jobs(session, [first], utcnow(), purged=True)
        return found

    monkeypatch.setattr(cache, "find_source", find_then_purge)
    published: list[str] = []

    def publish(job_id: str, priority: int) -> None:
        assert blob(store, source_key(job_id)) == pdf  # stored before anyone is told to read it
        published.append(job_id)

    monkeypatch.setattr(submission, "publish_ingest", publish)
    after: list[tuple[Any, ...]] = []
    job = submit(pdf, store, after_response=(lambda *call: after.append(call)) if deferred else None)
    assert job.cached_from is None and job.state == JobState.QUEUED and job.source_deleted_at is None
    assert blob(store, source_key(job.id)) == pdf
    if deferred:
        assert [(fn, job_id) for fn, job_id, _ in after] == [(publish, job.id)]
        after[0][0](*after[0][1:])
    assert published == [job.id]
