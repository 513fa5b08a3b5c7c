"""Cached jobs read their owner's page rows and result blobs in place (pagemill.jobs.cache); retention and
purges (pagemill.retention.service) hand both over to the oldest cached job still reading them before the
owner's blobs go. On real migrated databases (SQLite and Postgres) with a real local blob store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from pagemill import db
from pagemill.errors import DependencyUnavailable
from pagemill.jobs import cache
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs import service as jobs_service
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.jobs.service import result_key
from pagemill.models import Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.retention import repository as retention_repo
from pagemill.retention import service as retention
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.storage.local import LocalBlobStore
from pagemill.tenancy.principal import Actor
from pagemill.tenancy.repository import ensure_tenant
from tests.support.blob_stores import stored_keys
from tests.support.factories import make_job
from tests.support.migrations import downgrade_to, upgrade
from tests.support.tiers import with_free_tier

pytestmark = pytest.mark.integration

TENANT = "hand-over-tenant"
ACTOR = Actor(subject="test")
OPTIONS = JobOptions(formats=[OutputFormat.TEXT, OutputFormat.MARKDOWN])
SHA = "b" * 64


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[str]:
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
        ensure_tenant(session, TENANT, "free")
    yield database


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def add_owner(store: LocalBlobStore, *, finished_ago_s: float = 0) -> str:
    """A succeeded job with two done pages, its original and result blobs, as a worker leaves one."""
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        values: dict[str, Any] = {"options": OPTIONS.model_dump(mode="json"), "sha256": SHA, "tier": "free"}
        jobs_repo.add_job(session, make_job(job_id, tenant_id=TENANT, state=JobState.RUNNING, **values))
        jobs_repo.set_planned(session, job_id, 2, [0, 1])
        rows = [{"index": i, "text": f"page {i}"} for i in range(2)]
        jobs_repo.finish_pages(session, job_id, PageState.DONE, rows)
        jobs_repo.refresh_progress(session, job_id)
        jobs_repo.finish_job(session, job_id, JobState.SUCCEEDED)
        job = session.get(Job, job_id)
        assert job is not None
        job.finished_at = utcnow() - timedelta(seconds=finished_ago_s)
    store.put_bytes(f"jobs/{job_id}/source", b"%PDF")
    for fmt in OPTIONS.formats:
        store.put_bytes(result_key(job_id, fmt), f"{fmt} of the document".encode())
    return job_id


def find() -> cache.CacheSource | None:
    with db.session_scope() as session:
        settings = get_settings()
        now = utcnow()
        return cache.find_source(
            session, settings, tenant_id=TENANT, sha256=SHA, options=OPTIONS, max_pages=100, now=now
        )


def adopt_new() -> str:
    """A new job answered from the cache; its id."""
    source = find()
    assert source is not None
    with db.session_scope() as session:
        job = make_job(tenant_id=TENANT, sha256=SHA, options=OPTIONS.model_dump(mode="json"), tier="free")
        jobs_repo.add_job(session, job)
        assert cache.adopt(session, job, source, utcnow())
        return job.id


def results(store: LocalBlobStore, job_id: str) -> dict[str, bytes]:
    """Every result of a job as the API reads it."""
    out = {}
    with db.session_scope() as session:
        for fmt in OPTIONS.formats:
            chunks, _ = jobs_service.open_result(session, store, TENANT, job_id, fmt, actor=ACTOR)
            out[fmt.value] = b"".join(chunks)
    return out


def texts(job_id: str) -> list[str | None]:
    with db.session_scope() as session:
        return [jobs_service.get_page(session, TENANT, job_id, n).text for n in (1, 2)]


def jobs_by_id() -> dict[str, Job]:
    with db.session_scope() as session:
        return {job.id: job for job in session.scalars(select(Job))}


EXPECTED = {"text": b"text of the document", "markdown": b"markdown of the document"}


def test_a_cache_hit_reads_the_owner_results_and_copies_nothing(store: LocalBlobStore) -> None:
    add_owner(store)
    before = stored_keys(store)
    reader = adopt_new()
    assert stored_keys(store) == before
    assert results(store, reader) == EXPECTED and texts(reader) == ["page 0", "page 1"]


def test_a_purged_owner_hands_its_results_and_rows_to_its_oldest_reader(store: LocalBlobStore) -> None:
    owner = add_owner(store)
    first, second = adopt_new(), adopt_new()

    # Named as a client may spell it: the API takes any spelling of a UUID.
    purged = retention.purge_job(db.session_scope, store, TENANT, owner.upper(), actor=ACTOR)

    assert purged.state == JobState.EXPIRED and purged.purged
    assert not any(key.startswith(f"jobs/{owner}/") for key in stored_keys(store))
    assert stored_keys(store) == sorted(f"jobs/{first}/{name}" for name in ("result.md", "result.txt"))
    jobs = jobs_by_id()
    assert jobs[first].pages_from is None and jobs[second].pages_from == first
    assert jobs[owner].pages_from is None and jobs[owner].retiring_at is not None
    for reader in (first, second):
        assert results(store, reader) == EXPECTED and texts(reader) == ["page 0", "page 1"]
    # The heir is a cache source like any other: a new hit reads it in place.
    third = adopt_new()
    assert jobs_by_id()[third].pages_from == first and results(store, third) == EXPECTED


def test_retention_hands_over_in_the_sweep_and_then_leaves_nothing(store: LocalBlobStore) -> None:
    settings = with_free_tier(results_retention_s=600)
    owner = add_owner(store, finished_ago_s=1200)
    reader = adopt_new()  # finished now: kept for its own period

    assert retention.sweep_expired(settings, store) == (0, 1)
    assert retention.sweep_expired(settings, store) == (0, 0)

    jobs = jobs_by_id()
    assert jobs[owner].state == JobState.EXPIRED and jobs[reader].state == JobState.SUCCEEDED
    assert results(store, reader) == EXPECTED and texts(reader) == ["page 0", "page 1"]
    retention.purge_job(db.session_scope, store, TENANT, reader, actor=ACTOR)
    assert stored_keys(store) == []
    with db.session_scope() as session:
        assert session.scalars(select(Page)).all() == []


def test_a_retiring_owner_is_no_cache_source_and_refuses_adoption(store: LocalBlobStore) -> None:
    owner = add_owner(store)
    source = find()
    assert source is not None
    with db.session_scope() as session:
        assert retention_repo.retire_jobs(session, [owner], utcnow(), purged=False) == [owner]
    assert find() is None
    with db.session_scope() as session:
        job = make_job(tenant_id=TENANT, sha256=SHA, options=OPTIONS.model_dump(mode="json"))
        jobs_repo.add_job(session, job)
        assert cache.adopt(session, job, source, utcnow()) is False
        assert job.state == JobState.QUEUED and job.pages_from is None


def test_an_owner_whose_only_reader_is_retiring_waits_for_it(store: LocalBlobStore) -> None:
    settings = with_free_tier(results_retention_s=600)
    owner = add_owner(store, finished_ago_s=1200)
    reader = adopt_new()
    with db.session_scope() as session:  # another sweeper has begun deleting the reader
        retention_repo.retire_jobs(session, [reader], utcnow(), purged=False)

    assert retention.sweep_expired(settings, store) == (0, 0)  # the owner waits
    assert jobs_by_id()[owner].state == JobState.SUCCEEDED and results(store, reader) == EXPECTED

    with db.session_scope() as session:  # the reader goes
        retention_repo.expire_jobs(session, [reader], utcnow(), purged=False)
    assert retention.sweep_expired(settings, store) == (0, 1)
    assert stored_keys(store) == []


def test_an_heir_that_begins_to_retire_meanwhile_keeps_no_copies(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = add_owner(store)
    heir = adopt_new()
    readers_of = retention_repo.result_readers

    def readers_then_heir_retires(*args: Any) -> retention_repo.Readers:
        found = readers_of(*args)
        with db.session_scope() as session:
            retention_repo.retire_jobs(session, [heir], utcnow(), purged=False)
        return found

    monkeypatch.setattr(retention_repo, "result_readers", readers_then_heir_retires)
    with pytest.raises(DependencyUnavailable):
        retention.purge_job(db.session_scope, store, TENANT, owner, actor=ACTOR)

    # The copies were taken back.
    assert not any(key.startswith(f"jobs/{heir}/") for key in stored_keys(store))
    jobs = jobs_by_id()
    assert jobs[owner].state == JobState.SUCCEEDED and jobs[heir].pages_from == owner
    assert results(store, heir) == EXPECTED  # nothing of the owner was deleted


def test_downgrading_gives_cached_jobs_copies_of_their_owner_results() -> None:
    # Before revision f2a1d0e5c502 a cached job read its own copies: the migration makes them.
    store = get_blob_store()
    assert isinstance(store, LocalBlobStore)
    owner = add_owner(store)
    reader = adopt_new()
    try:
        downgrade_to("f2a1d0e5c501")
        for fmt in OPTIONS.formats:
            assert b"".join(store.iter_chunks(result_key(reader, fmt))) == EXPECTED[fmt.value]
            assert store.exists(result_key(owner, fmt))
    finally:
        upgrade()


def test_a_second_hand_over_to_the_same_heir_changes_nothing_and_keeps_its_copies(
    store: LocalBlobStore,
) -> None:
    # Two sweepers (or a sweeper and a purge) hand the same owner over at once: the later one must not
    # take back the copies the heir now reads.
    owner = add_owner(store)
    heir, other = adopt_new(), adopt_new()
    with db.session_scope() as session:
        retention_repo.retire_jobs(session, [owner], utcnow(), purged=False)
        readers = retention_repo.result_readers(session, owner)
    assert readers.heir == heir
    assert retention._hand_over(store, owner) and retention._hand_over(store, owner)
    with db.session_scope() as session:  # the later one, having read the readers before the first ended
        assert retention_repo.hand_over(session, owner, heir)
    jobs = jobs_by_id()
    assert jobs[owner].pages_from == heir and jobs[other].pages_from == heir and jobs[heir].pages_from is None
    assert results(store, heir) == EXPECTED == results(store, other)
