"""Batches, the result cache and retention on real migrated databases (SQLite and Postgres) with a real
local blob store: what the e2e flows cannot reach cheaply (a whole-batch refusal stores nothing, a cache
source lost between its lookup and its adoption, retention per tier, several sweeps over the same jobs)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from pagemill import db
from pagemill.batches import service as batches
from pagemill.errors import QuotaExceeded
from pagemill.jobs import cache
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs import service as jobs_service
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.jobs.service import result_key
from pagemill.models import Batch, BatchItem, Job, JobState, Page, PageState, UsageCounter
from pagemill.models.base import utcnow
from pagemill.retention import repository as retention_repo
from pagemill.retention.service import sweep_expired
from pagemill.settings import Settings, get_settings
from pagemill.storage.local import LocalBlobStore
from pagemill.tenancy.principal import Actor, Principal
from pagemill.tenancy.repository import ensure_tenant
from tests.support import documents
from tests.support.blob_stores import stored_keys
from tests.support.factories import make_job
from tests.support.tiers import with_free_tier

pytestmark = pytest.mark.integration

TENANT = "batch-tenant"
ACTOR = Actor(subject="test")
OPTIONS = JobOptions(formats=[OutputFormat.TEXT])


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[str]:
    """Empty job, batch and usage tables, and this module's tenant."""
    with db.session_scope() as session:
        for model in (Page, BatchItem, Job, Batch, UsageCounter):
            session.execute(delete(model))
        ensure_tenant(session, TENANT, "free")
    yield database


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    """A blob store in a folder of this test's own."""
    return LocalBlobStore(tmp_path / "blobs")


def principal() -> Principal:
    """The free-tier caller of this module's tenant."""
    return Principal(tenant_id=TENANT, tier="free", subject="test", rate_key="test")


def test_a_batch_over_quota_is_refused_whole_and_stores_nothing(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    settings = with_free_tier(documents_per_day=2)
    pdf = documents.make_text_pdf(tmp_path / "a.pdf", ["Quota page"]).read_bytes()
    files = [batches.FileUpload(f"{i}.pdf", io.BytesIO(pdf)) for i in range(3)]
    with pytest.raises(QuotaExceeded) as refused:
        batches.submit_batch(
            db.session_scope,
            store,
            settings,
            principal=principal(),
            actor=ACTOR,
            files=files,
            options=OPTIONS,
            password=None,
        )
    assert refused.value.details["remaining"] == 2 and refused.value.details["requested"] == 3
    assert stored_keys(store) == []
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0

    # A PDF and an unsupported file: the file is refused alone and takes no quota (one day, one month row).
    files = [batches.FileUpload("a.pdf", io.BytesIO(pdf)), batches.FileUpload("b.txt", io.BytesIO(b"text"))]
    out = batches.submit_batch(
        db.session_scope,
        store,
        settings,
        principal=principal(),
        actor=ACTOR,
        files=files,
        options=OPTIONS,
        password=None,
    )
    assert [item.state for item in out.items] == ["queued", "refused"]
    assert stored_keys(store) == [f"jobs/{out.job_ids[0]}/source"]
    with db.session_scope() as session:
        assert session.scalar(select(func.sum(UsageCounter.documents))) == 2


def add_succeeded(
    *, tenant_id: str = TENANT, pages: int = 2, finished_ago_s: float = 0, **fields: object
) -> str:
    """A succeeded job with done pages, finished ``finished_ago_s`` ago; its id."""
    job_id = str(uuid.uuid4())
    finished = utcnow() - timedelta(seconds=finished_ago_s)
    with db.session_scope() as session:
        values = {"options": OPTIONS.model_dump(mode="json"), "sha256": "a" * 64, "tier": "free", **fields}
        jobs_repo.add_job(session, make_job(job_id, tenant_id=tenant_id, state=JobState.RUNNING, **values))
        jobs_repo.set_planned(session, job_id, pages, list(range(pages)))
        jobs_repo.finish_pages(
            session, job_id, PageState.DONE, [{"index": i, "text": f"page {i}"} for i in range(pages)]
        )
        jobs_repo.refresh_progress(session, job_id)
        jobs_repo.finish_job(session, job_id, JobState.SUCCEEDED)
        job = session.get(Job, job_id)
        assert job is not None
        job.finished_at = finished
    return job_id


def find(
    settings: Settings, *, tenant_id: str = TENANT, options: JobOptions = OPTIONS, max_pages: int = 100
) -> cache.CacheSource | None:
    with db.session_scope() as session:
        return cache.find_source(
            session,
            settings,
            tenant_id=tenant_id,
            sha256="a" * 64,
            options=options,
            max_pages=max_pages,
            now=utcnow(),
        )


def test_the_cache_matches_only_the_same_tenant_options_and_period() -> None:
    settings = get_settings()
    source_id = add_succeeded()
    found = find(settings)
    assert found is not None and found.job_id == source_id and found.pages_done == 2
    with db.session_scope() as session:
        ensure_tenant(session, "someone-else", "free")
    assert find(settings, tenant_id="someone-else") is None
    assert find(settings, options=JobOptions(formats=[OutputFormat.JSON])) is None
    assert find(settings, max_pages=1) is None  # the tier would not read that many pages now
    assert (
        find(settings.model_copy(update={"cache": settings.cache.model_copy(update={"enabled": False})}))
        is None
    )
    short = settings.model_copy(update={"cache": settings.cache.model_copy(update={"ttl_s": 60})})
    with db.session_scope() as session:
        job = session.get(Job, source_id)
        assert job is not None
        job.finished_at = utcnow() - timedelta(seconds=120)
    assert find(short) is None and find(settings) is not None


def test_a_source_retired_after_its_lookup_leaves_the_job_to_fresh_work() -> None:
    source_id = add_succeeded()
    source = find(get_settings())
    assert source is not None and source.pages_owner == source_id

    with db.session_scope() as session:  # a purge begins, between the lookup and the adoption
        retention_repo.retire_jobs(session, [source_id], utcnow(), purged=True)
    with db.session_scope() as session:
        job = make_job(tenant_id=TENANT, sha256="a" * 64, options=OPTIONS.model_dump(mode="json"))
        jobs_repo.add_job(session, job)
        assert cache.adopt(session, job, source, utcnow()) is False
        assert job.state == JobState.QUEUED and job.cached_from is None and job.pages_from is None
    assert find(get_settings()) is None  # and it is no source any more


def adopt_new(source: cache.CacheSource) -> str:
    """A new job of the module's tenant answered from ``source``; its id."""
    with db.session_scope() as session:
        job = make_job(tenant_id=TENANT, sha256="a" * 64, options=OPTIONS.model_dump(mode="json"))
        jobs_repo.add_job(session, job)
        assert cache.adopt(session, job, source, utcnow())
        assert job.state == JobState.SUCCEEDED and job.pages_done == 2
        return job.id


def page_text(job_id: str, number: int) -> str | None:
    """A page's text as the API reads it (through a cached job's owner)."""
    with db.session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return jobs_service.get_page(session, TENANT, job_id, number).text


def test_shared_pages_pass_to_a_cached_job_when_their_owner_goes() -> None:
    owner = add_succeeded()
    source = find(get_settings())
    assert source is not None
    first = adopt_new(source)
    second_source = find(get_settings())
    assert second_source is not None and second_source.pages_owner == owner  # a copy of a copy: same rows
    second = adopt_new(second_source)
    assert page_text(first, 2) == page_text(second, 2) == "page 1"

    with db.session_scope() as session:  # the owner purged: its rows pass to the oldest user
        assert retention_repo.expire_jobs(session, [owner], utcnow(), purged=True) == [owner]
    with db.session_scope() as session:
        jobs = {job.id: job for job in session.scalars(select(Job))}
        rows = dict(session.execute(select(Page.job_id, func.count()).group_by(Page.job_id)).all())
    assert rows == {first: 2}
    assert jobs[first].pages_from is None and jobs[second].pages_from == first
    assert jobs[owner].state == JobState.EXPIRED and jobs[owner].pages_from is None
    assert page_text(first, 1) == page_text(second, 1) == "page 0"

    with db.session_scope() as session:  # both users expire: nobody uses the rows any more
        retention_repo.expire_jobs(session, [first, second], utcnow(), purged=False)
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Page)) == 0


def test_retention_applies_each_tier_and_repeats_nothing(store: LocalBlobStore) -> None:
    settings = with_free_tier(originals_retention_s=60, results_retention_s=600)
    fresh = add_succeeded(finished_ago_s=1)
    old_original = add_succeeded(finished_ago_s=120)
    old_results = add_succeeded(finished_ago_s=1200)
    standard = add_succeeded(finished_ago_s=1200, tier="standard")  # the standard tier keeps it (days)
    legacy = add_succeeded(finished_ago_s=1200, tier=None)  # before tiers were recorded: standard's rules
    running = str(uuid.uuid4())
    with db.session_scope() as session:
        jobs_repo.add_job(session, make_job(running, tenant_id=TENANT, state=JobState.RUNNING, tier="free"))
    for job_id in (fresh, old_original, old_results, standard, legacy, running):
        store.put_bytes(f"jobs/{job_id}/source", b"%PDF")
        store.put_bytes(result_key(job_id, OutputFormat.TEXT), b"text")

    assert sweep_expired(settings, store) == (1, 1)
    assert sweep_expired(settings, store) == (0, 0)

    with db.session_scope() as session:
        jobs = {job.id: job for job in session.scalars(select(Job))}
    assert jobs[old_results].state == JobState.EXPIRED and jobs[old_results].expired_at is not None
    assert not jobs[old_results].purged and jobs[old_results].source_deleted_at is not None
    assert jobs[old_original].state == JobState.SUCCEEDED and jobs[old_original].source_deleted_at is not None
    for kept in (fresh, standard, legacy, running):
        assert jobs[kept].source_deleted_at is None and jobs[kept].state != JobState.EXPIRED
    assert not store.exists(f"jobs/{old_results}/source") and not store.exists(
        result_key(old_results, OutputFormat.TEXT)
    )
    assert not store.exists(f"jobs/{old_original}/source")
    assert store.exists(result_key(old_original, OutputFormat.TEXT))
    with db.session_scope() as session:
        pages = dict(session.execute(select(Page.job_id, func.count()).group_by(Page.job_id)).all())
    assert old_results not in pages and pages[old_original] == 2
