"""Running Alembic migrations from code (`pagemill migrate`, and `pagemill up` in embedded mode)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    """Alembic's config pointing at the project's migrations."""
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    return config


def upgrade_to_head() -> None:
    """Bring the configured database to the newest schema."""
    command.upgrade(alembic_config(), "head")
