"""page claims: heartbeated, fenced claims and the fair scheduler's columns

Revision ID: 7c1e4a9d2b60
Revises: d078364011c0
Create Date: 2026-11-29 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.models.base import UtcDateTime

revision: str = "7c1e4a9d2b60"
down_revision: str | None = "d078364011c0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_claimed_at", UtcDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ocr", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("chain_start", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("claim_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("claim_expires_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("not_before", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deferrals", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_pages_queue_state_claim", ["queue", "state", "claim_id", "job_id"])
        batch_op.create_index("ix_pages_claim_expires_at", ["claim_expires_at"])
    # Pages pending from before this revision were planned for the cpu queue's text pass; a job whose
    # messages went to the gpu queue is re-offered there by the sweeper after its lease (its re-plan
    # re-routes pending pages).
    op.execute("UPDATE pages SET queue = 'cpu' WHERE state = 'pending'")


def downgrade() -> None:
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.drop_index("ix_pages_claim_expires_at")
        batch_op.drop_index("ix_pages_queue_state_claim")
        for column in (
            "deferrals",
            "not_before",
            "claim_expires_at",
            "claimed_by",
            "claim_id",
            "chain_start",
            "ocr",
            "queue",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("last_claimed_at")
