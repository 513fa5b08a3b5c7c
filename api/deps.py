"""Dependencies shared by routes, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from pagemill.db import SessionScope, session_scope
from pagemill.settings import Settings, get_settings
from pagemill.storage import BlobStore, get_blob_store


def _session() -> Iterator[Session]:
    # One session per request that commits once, after the route returns; queued tasks go out after that.
    with session_scope() as session:
        yield session


async def _session_scope() -> SessionScope:
    # Async: no I/O, so no thread-pool hop.
    return session_scope


SessionDep = Annotated[Session, Depends(_session, scope="function")]
SessionScopeDep = Annotated[SessionScope, Depends(_session_scope)]
"""For routes whose work is mostly outside the database (storing an upload): the service opens short
transactions itself, so no connection is held while bytes move."""
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[BlobStore, Depends(get_blob_store)]
