"""Running Alembic migrations from code (`pagemill migrate`, and `pagemill up` in embedded mode), and
telling an operator whether the configured database is there and migrated before a command uses it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pagemill.errors import DependencyUnavailable
from pagemill.settings import Settings

_ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    """Alembic's config pointing at the project's migrations."""
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    return config


def upgrade_to_head() -> None:
    """Bring the configured database to the newest schema."""
    command.upgrade(alembic_config(), "head")


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this code's migrations."""

    current: str | None
    """The revision recorded in the database; None when it was never migrated."""
    heads: tuple[str, ...]
    known: bool
    """True when ``current`` is one of this code's revisions (False: a newer release migrated it)."""

    @property
    def behind(self) -> bool:
        """True when ``pagemill migrate`` has something to do (never migrated, or an older revision)."""
        return self.current is None or (self.known and self.current not in self.heads)


@functools.cache
def _revisions() -> tuple[tuple[str, ...], frozenset[str]]:
    """This code's head revisions and every revision id (read once: readiness asks on every probe)."""
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(script.get_heads()), frozenset(rev.revision for rev in script.walk_revisions())


def schema_state(engine: Engine) -> SchemaState:
    """Read the database's Alembic revision and compare it with this code's newest one."""
    heads, known = _revisions()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return SchemaState(current=current, heads=heads, known=current in known)


def sqlite_path(settings: Settings) -> Path | None:
    """The file of an SQLite database in force, None for a server database (or an in-memory SQLite)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def masked_database_url(settings: Settings) -> str:
    """The database URL in force, password hidden: safe to print."""
    return make_url(settings.database_url).render_as_string(hide_password=True)


def missing_database(settings: Settings) -> DependencyUnavailable | None:
    """The error to show when the embedded database does not exist, before anything creates an empty one.

    A relative data dir is resolved against the current directory, so a command run from another folder
    would otherwise start a new, empty data dir there and fail on its missing tables.
    """
    path = sqlite_path(settings)
    if path is None or path.exists():
        return None
    data_dir = settings.data_dir.resolve()
    where = (
        ""
        if settings.data_dir.is_absolute()
        else f" (the data dir, PAGEMILL_DATA_DIR={settings.data_dir}, is relative to the current directory)"
    )
    return DependencyUnavailable(
        f"No Pagemill database at {path}{where}. Run this command from the folder where `pagemill up` ran, "
        f"or set PAGEMILL_DATA_DIR to that folder's pagemill-data; `pagemill migrate` creates a new, empty "
        f"database here.",
        reason="missing",
        data_dir=str(data_dir),
        database=str(path),
    )


def require_migrated(settings: Settings, engine: Engine) -> None:
    """Raise DependencyUnavailable, saying to run `pagemill migrate`, unless the schema is up to date.

    Check :func:`missing_database` first: connecting to a missing SQLite file creates it.
    """
    state = schema_state(engine)
    if not state.behind:
        return
    # No URL in the message: readiness shows it to anyone who asks; details carry it for operators.
    if state.current is None:
        message = "The database is not migrated (it has no Pagemill tables): run `pagemill migrate` first."
    else:
        message = (
            f"The database is not migrated to this release (it is at {state.current}, this Pagemill needs "
            f"{', '.join(state.heads)}): run `pagemill migrate` first."
        )
    raise DependencyUnavailable(
        message,
        reason="not_migrated",
        database=masked_database_url(settings),
        current=state.current,
        heads=list(state.heads),
    )
