"""job password sealed: the password of an encrypted PDF is kept encrypted, never in plain text

Revision ID: d078364011c0
Revises: 5b2f0c7e9a41
Create Date: 2026-11-29 10:30:00.000000

Passwords of jobs still running are sealed with the configured key (embedded mode makes one); without a key
they are dropped, and those jobs fail ENCRYPTED_FILE at their next read instead of keeping them readable.
Final jobs hold none (the password was wiped when they ended).
"""

import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from pagemill.errors import SecretsNotConfigured
from pagemill.secret_box import open_secret, seal_secret
from pagemill.settings import Settings, get_settings

revision: str = "d078364011c0"
down_revision: str | None = "5b2f0c7e9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

_jobs = sa.table(
    "jobs",
    sa.column("id", sa.String),
    sa.column("document_password", sa.String),
    sa.column("document_password_sealed", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_password_sealed", sa.Text(), nullable=True))
    _convert("document_password", "document_password_sealed", seal_secret)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("document_password")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_password", sa.String(length=256), nullable=True))
    _convert("document_password_sealed", "document_password", open_secret)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("document_password_sealed")


def _convert(source: str, target: str, convert: Callable[[str, Settings], str | None]) -> None:
    """Copy every non-null ``source`` value into ``target`` through ``convert`` (seal or open)."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(_jobs.c.id, _jobs.c[source]).where(_jobs.c[source].is_not(None))).all()
    if not rows:
        return
    settings = get_settings()
    try:
        values = {job_id: convert(value, settings) for job_id, value in rows}
    except SecretsNotConfigured:
        log.warning(
            "no secrets.key: the passwords of %d running job(s) are dropped (they fail ENCRYPTED_FILE)",
            len(rows),
        )
        return
    for job_id, value in values.items():
        bind.execute(sa.update(_jobs).where(_jobs.c.id == job_id).values({target: value}))
