"""dead_letters: work that spent its attempts, by job, category and traceback fingerprint, and its replays

Revision ID: f2a1d0e5c501
Revises: e1a0b7c3d407
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.models.base import UtcDateTime

revision: str = "f2a1d0e5c501"
down_revision: str | None = "e1a0b7c3d407"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pages", sa.JSON(), nullable=False),
        sa.Column("task_name", sa.String(length=64), nullable=False),
        sa.Column("task_args", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("error_details", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("needs_password", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("failed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("replayed_by", sa.String(length=160), nullable=True),
        sa.Column("replay_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_dead_letters_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint(
            "job_id", "category", "fingerprint", name="uq_dead_letters_job_category_fingerprint"
        ),
    )
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at", "id"], unique=False)
    op.create_index("ix_dead_letters_state_category", "dead_letters", ["state", "category"], unique=False)
    op.create_index(
        "ix_dead_letters_tenant_failed_at", "dead_letters", ["tenant_id", "failed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_tenant_failed_at", table_name="dead_letters")
    op.drop_index("ix_dead_letters_state_category", table_name="dead_letters")
    op.drop_index("ix_dead_letters_failed_at", table_name="dead_letters")
    op.drop_table("dead_letters")
