"""Helpers for migration tests: take the test module's database back to a revision, and bring it to head
(emptied) again afterwards, reloading this process's engine and settings around each step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import command

from pagemill import db
from pagemill.migrate import alembic_config, upgrade_to_head
from pagemill.settings import get_settings
from tests.support.engines import forget_engine


def reload_database() -> None:
    """Close this process's engine and forget its settings (the next use reads PAGEMILL_* again)."""
    forget_engine()
    get_settings.cache_clear()


def downgrade_to(revision: str) -> None:
    """Migrate the configured database down to ``revision``."""
    command.downgrade(alembic_config(), revision)
    reload_database()


def upgrade() -> None:
    """Migrate the configured database to head."""
    upgrade_to_head()
    reload_database()


@contextlib.contextmanager
def at_revision(revision: str) -> Iterator[None]:
    """The configured database at ``revision`` for the block; at head again after, its jobs and pages gone."""
    downgrade_to(revision)
    try:
        yield
    finally:
        upgrade()
        with db.get_engine().begin() as conn:
            conn.execute(sa.text("DELETE FROM pages"))
            conn.execute(sa.text("DELETE FROM jobs"))
