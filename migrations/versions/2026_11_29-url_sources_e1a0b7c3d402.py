"""url sources: jobs fetched from a URL by the worker

Revision ID: e1a0b7c3d402
Revises: e1a0b7c3d401
Create Date: 2026-11-29 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e1a0b7c3d402"
down_revision: str | None = "e1a0b7c3d401"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What is unknown about a URL job's document until the worker has fetched it.
_UNKNOWN_BEFORE_FETCH = (
    ("filename", sa.String(length=255)),
    ("kind", sa.String(length=16)),
    ("size_bytes", sa.Integer()),
    ("sha256", sa.String(length=64)),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("source_max_bytes", sa.Integer(), nullable=True))
        for name, type_ in _UNKNOWN_BEFORE_FETCH:
            batch_op.alter_column(name, existing_type=type_, nullable=True)


def downgrade() -> None:
    # URL jobs never fetched have no document to describe: placeholders keep their rows under NOT NULL.
    op.execute(
        sa.text(
            "UPDATE jobs SET filename = COALESCE(filename, 'document'), kind = COALESCE(kind, ''), "
            "size_bytes = COALESCE(size_bytes, 0), sha256 = COALESCE(sha256, '') WHERE sha256 IS NULL"
        )
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name, type_ in _UNKNOWN_BEFORE_FETCH:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
        batch_op.drop_column("source_max_bytes")
        batch_op.drop_column("source_url")
