"""Alembic environment: the URL comes from Pagemill's settings; SQLite uses batch mode for ALTERs."""

from __future__ import annotations

from alembic import context

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
    engine = make_engine(get_settings())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `pagemill migrate`")
run_migrations_online()
