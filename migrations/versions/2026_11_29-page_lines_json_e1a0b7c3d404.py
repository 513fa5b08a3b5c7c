"""pages.lines_json: a page's lines serialised once, in their public shape

Revision ID: e1a0b7c3d404
Revises: e1a0b7c3d403
Create Date: 2026-11-29 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e1a0b7c3d404"
down_revision: str | None = "e1a0b7c3d403"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Pages saved before keep their lines in data (readers fall back to it): no rewrite of a large table.
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lines_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.drop_column("lines_json")
