"""The batches/cache/retention migration on SQLite and Postgres keeps every page row (on SQLite, a rebuilt
jobs table would delete them through their ON DELETE CASCADE), gives old jobs their tenant's tier, and a
downgrade gives cached jobs copies of the page rows they shared."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pagemill import db
from pagemill.models import DEFAULT_TENANT
from tests.support.migrations import at_revision, downgrade_to, upgrade

pytestmark = pytest.mark.integration

BEFORE = "e1a0b7c3d402"  # the revision before batches, the result cache and retention


@pytest.fixture
def at_previous_revision(database: str) -> Iterator[str]:
    """The module's database taken back to the revision before this one; head again after."""
    with at_revision(BEFORE):
        yield database


def _insert(table: str, **values: object) -> None:
    rows = sa.table(table, *(sa.column(name) for name in values))
    with db.get_engine().begin() as conn:
        conn.execute(sa.insert(rows).values(values))


def _job(**extra: object) -> str:
    job_id = str(uuid.uuid4())
    _insert(
        "jobs",
        id=job_id,
        tenant_id=DEFAULT_TENANT,
        priority=0,
        state="succeeded",
        cancel_requested=False,
        filename="a.pdf",
        kind="pdf",
        size_bytes=1,
        sha256="0" * 64,
        source_key="k",
        options="{}",
        pages_done=1,
        pages_failed=0,
        attempts=1,
        requeues=0,
        created_at="2026-11-29 10:00:00",
        updated_at="2026-11-29 10:00:00",
        **extra,
    )
    return job_id


def _pages(*job_ids: str) -> list[tuple[str, str]]:
    """(job id, text) of the page rows of these jobs (other tests' rows may share the database)."""
    pages = sa.table("pages", sa.column("job_id"), sa.column("text"))
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(pages.c.job_id, pages.c.text).where(pages.c.job_id.in_(job_ids))).all()
    return sorted((str(job_id), str(text)) for job_id, text in rows)


def test_upgrade_keeps_pages_and_downgrade_unshares_them(at_previous_revision: str) -> None:
    owner = _job()
    _insert("pages", job_id=owner, index=0, state="done", attempts=1, rotation=0, text="kept")

    upgrade()
    assert _pages(owner) == [(owner, "kept")]
    with db.get_engine().connect() as conn:
        tier = conn.execute(sa.text("SELECT tier FROM jobs WHERE id = :id"), {"id": owner}).scalar()
        tenant_tier = conn.execute(
            sa.text("SELECT tier FROM tenants WHERE id = :id"), {"id": DEFAULT_TENANT}
        ).scalar()
    assert tier == tenant_tier is not None

    cached = _job(cached_from=owner, pages_from=owner, purged=False)
    downgrade_to(BEFORE)
    assert _pages(owner, cached) == sorted([(owner, "kept"), (cached, "kept")])
