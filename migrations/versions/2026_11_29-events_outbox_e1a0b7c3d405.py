"""events: the outbox of job and batch events; job columns for event sequence, progress throttle, callback

Revision ID: e1a0b7c3d405
Revises: e1a0b7c3d404
Create Date: 2026-11-29 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.models.base import UtcDateTime

revision: str = "e1a0b7c3d405"
down_revision: str | None = "e1a0b7c3d404"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("time", UtcDateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("relayed_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
        sa.UniqueConstraint("job_id", "seq", name="uq_events_job_id_seq"),
    )
    op.create_index("ix_events_tenant_id_id", "events", ["tenant_id", "id"], unique=False)
    op.create_index("ix_events_relayed_at_id", "events", ["relayed_at", "id"], unique=False)
    # Plain ADD COLUMNs (no table rebuild on SQLite: see migrations/env.py on the jobs table's cascades).
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_seq", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("progress_event_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("progress_event_pages", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completed_at", UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("completed_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("callback_url")
        batch_op.drop_column("progress_event_pages")
        batch_op.drop_column("progress_event_at")
        batch_op.drop_column("event_seq")
    op.drop_index("ix_events_relayed_at_id", table_name="events")
    op.drop_index("ix_events_tenant_id_id", table_name="events")
    op.drop_table("events")
