"""Dependencies shared by routes, as Annotated aliases.

None of them runs in the thread pool on the way in: FastAPI runs a plain ``def`` dependency in a worker
thread, and under load every such hop waits for a thread and for the GIL (up to a 5 ms switch interval),
which is most of a status read's latency. Only the session's commit, which does I/O, takes a thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio.to_thread
from fastapi import Depends
from sqlalchemy.orm import Session

from pagemill.db import SessionScope, autocommit_scope, session_scope
from pagemill.settings import Settings, get_settings
from pagemill.storage import BlobStore, get_blob_store


async def _session() -> AsyncIterator[Session]:
    # One session per request that commits once, after the route returns; queued tasks go out after that.
    # Entering does no I/O (a connection is checked out by the route's first statement, in its thread), so
    # only the exit hops to a thread: one hop per request instead of two.
    scope = session_scope()
    session = scope.__enter__()
    try:
        yield session
    except BaseException as exc:
        await anyio.to_thread.run_sync(scope.__exit__, type(exc), exc, exc.__traceback__)
        raise
    else:
        await anyio.to_thread.run_sync(scope.__exit__, None, None, None)


async def _session_scope() -> SessionScope:
    # Async: no I/O, so no thread-pool hop.
    return session_scope


async def _read_scope() -> SessionScope:
    # Async: no I/O, so no thread-pool hop.
    return autocommit_scope


async def _settings() -> Settings:
    # Cached after the first call: no I/O, so no thread-pool hop.
    return get_settings()


async def _store() -> BlobStore:
    # Cached per process; made (no network I/O) by the first request that needs it.
    return get_blob_store()


SessionDep = Annotated[Session, Depends(_session, scope="function")]
SessionScopeDep = Annotated[SessionScope, Depends(_session_scope)]
"""For routes whose work is mostly outside the database (storing an upload): the service opens short
transactions itself, so no connection is held while bytes move."""
ReadScopeDep = Annotated[SessionScope, Depends(_read_scope)]
"""For read-only routes (a job, a page, the job list): the route opens the session in its own thread (no
hop of its own to commit), and on Postgres each statement commits by itself (no BEGIN or COMMIT round
trip). Never for a route that writes."""
SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[BlobStore, Depends(_store)]
