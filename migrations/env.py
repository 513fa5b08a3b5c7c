"""Alembic environment: the URL comes from Pagemill's settings; SQLite uses batch mode for ALTERs."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pagemill.db import make_engine
from pagemill.models import Base
from pagemill.settings import get_settings

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the configured database."""
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    settings = get_settings()
    # No statement limit from the first statement on: the dialect's own start-up queries come before the
    # session's SET below, and a tight database.statement_timeout_s would cancel them on a busy server.
    database = settings.database.model_copy(update={"statement_timeout_s": 0})
    engine = make_engine(settings.model_copy(update={"database": database}))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if not sqlite:
        # A migration may rebuild an index of a big table: no statement limit (database.statement_timeout_s)
        # for this session.
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.commit()
    if sqlite:
        # Batch mode rebuilds a table (new table, copy, DROP the old one): with foreign keys on, SQLite
        # deletes the rows that refer to the dropped table through ON DELETE CASCADE, so rebuilding `jobs`
        # emptied `pages`. SQLite's own procedure for schema changes: keys off (only possible outside a
        # transaction), the change, then a foreign key check before the commit.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # ends what SQLAlchemy began for the PRAGMA: Alembic's transaction comes next
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows without their parent: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `pagemill migrate`")
run_migrations_online()
