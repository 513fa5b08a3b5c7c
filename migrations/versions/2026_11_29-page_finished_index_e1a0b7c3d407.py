"""pages: index (queue, finished_at), for a pool's observed pages per second (the job ETA)

Revision ID: e1a0b7c3d407
Revises: e1a0b7c3d406
Create Date: 2026-11-29 22:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e1a0b7c3d407"
down_revision: str | None = "e1a0b7c3d406"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_pages_queue_finished_at", "pages", ["queue", "finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pages_queue_finished_at", table_name="pages")
