"""batches, result cache and retention

Revision ID: e1a0b7c3d403
Revises: e1a0b7c3d402
Create Date: 2026-11-29 17:00:00.000000

Batches and their items; on jobs: the batch, the job a cached result was copied from and the job whose
page rows it uses, the tier at submission (whose retention applies) and the retention marks. Jobs from
before this revision get their tenant's current tier.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.models.base import UtcDateTime

revision: str = "e1a0b7c3d403"
down_revision: str | None = "e1a0b7c3d402"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.Column("items_refused", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_batches_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index("ix_batches_tenant_created", "batches", ["tenant_id", "created_at"])
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_items_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_batch_items")),
    )
    # Added in place (ALTER TABLE ... ADD COLUMN), never by batch mode's copy of the table on SQLite: dropping
    # the old jobs table would delete every page row through their ON DELETE CASCADE.
    with op.batch_alter_table("jobs", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("tier", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("cached_from", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("pages_from", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("source_deleted_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("expired_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("purged", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index(batch_op.f("ix_jobs_batch_id"), ["batch_id"])
        batch_op.create_index(batch_op.f("ix_jobs_pages_from"), ["pages_from"])
        batch_op.create_index("ix_jobs_tenant_sha256", ["tenant_id", "sha256"])
        batch_op.create_index("ix_jobs_finished_at", ["finished_at"])
    op.execute("UPDATE jobs SET tier = (SELECT tenants.tier FROM tenants WHERE tenants.id = jobs.tenant_id)")


def downgrade() -> None:
    # Cached jobs share the page rows of their owner; before that goes, each gets copies of its own.
    bind = op.get_bind()
    pages = sa.Table("pages", sa.MetaData(), autoload_with=bind)
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("pages_from", sa.String))
    names = [column.name for column in pages.columns if column.name != "job_id"]
    shared = (
        sa.select(jobs.c.id, *(pages.c[name] for name in names))
        .join(pages, pages.c.job_id == jobs.c.pages_from)
        .where(jobs.c.pages_from.is_not(None))
    )
    op.execute(pages.insert().from_select(["job_id", *names], shared))
    for index in ("ix_jobs_finished_at", "ix_jobs_tenant_sha256", "ix_jobs_pages_from", "ix_jobs_batch_id"):
        op.drop_index(index, table_name="jobs")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), never batch mode's copy of the table: dropping the
    # old jobs table would delete every page row through their ON DELETE CASCADE.
    for column in (
        "purged",
        "expired_at",
        "source_deleted_at",
        "pages_from",
        "cached_from",
        "batch_id",
        "tier",
    ):
        op.drop_column("jobs", column)
    # Expired jobs have no state before this revision: their results are gone, as a failed job's are.
    op.execute("UPDATE jobs SET state = 'failed' WHERE state = 'expired'")
    op.drop_table("batch_items")
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_table("batches")
