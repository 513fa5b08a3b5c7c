"""tus uploads

Revision ID: e1a0b7c3d401
Revises: 7c1e4a9d2b60
Create Date: 2026-11-29 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.models.base import UtcDateTime

revision: str = "e1a0b7c3d401"
down_revision: str | None = "7c1e4a9d2b60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.Column("upload_offset", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("multipart_id", sa.Text(), nullable=True),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("pending_key", sa.String(length=512), nullable=True),
        sa.Column("pending_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("head", sa.LargeBinary(), nullable=True),
        sa.Column("lock_token", sa.String(length=32), nullable=True),
        sa.Column("locked_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_uploads_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index("ix_uploads_state_expires", ["state", "expires_at"])
        batch_op.create_index("ix_uploads_tenant_created", ["tenant_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_uploads_tenant_created")
        batch_op.drop_index("ix_uploads_state_expires")
    op.drop_table("uploads")
