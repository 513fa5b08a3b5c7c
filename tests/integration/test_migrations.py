"""Migrations keep what is stored, on SQLite and Postgres: a job with pages recorded at an older revision is
still whole after upgrading to head and after downgrading again.

SQLite rebuilds a table to change a column (Alembic's batch mode drops the old table): with foreign keys on,
dropping `jobs` deleted every page through ON DELETE CASCADE. migrations/env.py turns the keys off around a
migration, as SQLite's procedure for schema changes says.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pagemill import db
from pagemill.models import DEFAULT_TENANT
from tests.support.migrations import at_revision, downgrade_to, upgrade

pytestmark = pytest.mark.integration

OLD = "7c1e4a9d2b60"  # page claims: the head before uploads, URL sources, batches and the cache
PAGES = 3


@pytest.fixture
def at_old_revision(database: str) -> Iterator[str]:
    """The module's database taken back to ``OLD``; head again (and emptied) after."""
    with at_revision(OLD):
        yield database


def _insert_job_with_pages() -> str:
    job_id = str(uuid.uuid4())
    job = {
        "id": job_id,
        "tenant_id": DEFAULT_TENANT,
        "priority": 0,
        "state": "succeeded",
        "cancel_requested": False,
        "filename": "a.pdf",
        "kind": "pdf",
        "size_bytes": 1,
        "sha256": "0" * 64,
        "source_key": f"jobs/{job_id}/source",
        "options": "{}",
        "pages_total": PAGES,
        "pages_done": PAGES,
        "pages_failed": 0,
        "attempts": 1,
        "requeues": 0,
        "created_at": "2026-11-29 10:00:00",
        "updated_at": "2026-11-29 10:00:00",
    }
    jobs = sa.table("jobs", *(sa.column(name) for name in job))
    page_columns = ("job_id", "index", "state", "attempts", "rotation", "text")
    pages = sa.table("pages", *(sa.column(name) for name in page_columns))
    with db.get_engine().begin() as conn:
        conn.execute(sa.insert(jobs).values(job))
        for index in range(PAGES):
            conn.execute(
                sa.insert(pages).values(
                    dict(zip(page_columns, (job_id, index, "done", 1, 0, f"p{index}"), strict=True))
                )
            )
    return job_id


def _page_texts(job_id: str) -> list[str]:
    with db.get_engine().connect() as conn:
        rows = conn.execute(
            sa.text('SELECT text FROM pages WHERE job_id = :id ORDER BY "index"'), {"id": job_id}
        ).all()
    return [str(row[0]) for row in rows]


def test_upgrading_and_downgrading_keeps_every_page(at_old_revision: str) -> None:
    job_id = _insert_job_with_pages()

    upgrade()
    assert _page_texts(job_id) == ["p0", "p1", "p2"]

    downgrade_to(OLD)
    assert _page_texts(job_id) == ["p0", "p1", "p2"]
