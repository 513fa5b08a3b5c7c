"""jobs.retiring_at: a job whose blobs retention or a purge is deleting; cached jobs read their owner's results

Revision ID: f2a1d0e5c502
Revises: f2a1d0e5c501
Create Date: 2026-11-30 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.models.base import UtcDateTime

revision: str = "f2a1d0e5c502"
down_revision: str | None = "f2a1d0e5c501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As at this revision (pagemill.jobs.service.RESULT_FILES).
_RESULT_FILES = {
    "markdown": "result.md",
    "text": "result.txt",
    "json": "result.json",
    "srt": "result.srt",
    "vtt": "result.vtt",
}


def upgrade() -> None:
    # Added in place (ALTER TABLE ... ADD COLUMN), never by batch mode's copy of the table on SQLite: dropping
    # the old jobs table would delete every page row through their ON DELETE CASCADE.
    with op.batch_alter_table("jobs", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("retiring_at", UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Before this revision a cached job read its own copies of the results: the cached jobs made since (which
    # read their owner's) get them now, from the blob store the settings name.
    from pagemill.storage import get_blob_store

    store = get_blob_store()
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("pages_from", sa.String),
        sa.column("cached_from", sa.String),
        sa.column("state", sa.String),
        sa.column("options", sa.JSON),
    )
    rows = op.get_bind().execute(
        sa.select(jobs.c.id, jobs.c.pages_from, jobs.c.options).where(
            jobs.c.cached_from.is_not(None), jobs.c.pages_from.is_not(None), jobs.c.state != "expired"
        )
    )
    for job_id, owner, options in rows:
        for fmt in (options or {}).get("formats", []):
            name = _RESULT_FILES.get(fmt)
            if name is not None and not store.exists(f"jobs/{job_id}/{name}"):
                store.copy(f"jobs/{owner}/{name}", f"jobs/{job_id}/{name}")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), never batch mode's copy of the table (see upgrade).
    op.drop_column("jobs", "retiring_at")
