"""Where a psycopg connection that was never closed was opened, in psycopg's own warning.

Now and then a run of the suite fails on psycopg's "deleted while still open" ResourceWarning, raised when the
garbage collector takes a connection some earlier test left open. pytest reports it in whatever test runs
then, so the message alone does not say which code opened it. Installed by ``tests/conftest.py``, this
keeps the opening stack on every connection (microseconds per connect: pools connect rarely) and puts it in
the warning, so the next such failure names its cause.
"""

from __future__ import annotations

import traceback
import warnings
from typing import Any

import psycopg
from psycopg import _connection_base

_ORIGIN = "_pagemill_test_origin"
_installed = False


def install() -> None:
    """Record each connection's opening stack and name it in the unclosed-connection warning (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def recording_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        connection = connect(cls, *args, **kwargs)
        setattr(connection, _ORIGIN, "".join(traceback.format_stack(limit=30)[:-1]))
        return connection

    def naming_del(self: Any, *_: Any) -> None:
        # psycopg's own __del__, plus the origin: closed, pooled or never connected ones are fine.
        if not hasattr(self, "pgconn") or self.closed or hasattr(self, "_pool"):
            return
        warnings.warn(
            f"{object.__repr__(self)} was deleted while still open; it was opened at:\n"
            f"{getattr(self, _ORIGIN, '(unknown: opened before the tests installed the recorder)')}",
            ResourceWarning,
            stacklevel=1,
        )

    psycopg.Connection.connect = classmethod(recording_connect)  # type: ignore[method-assign,assignment]
    # psycopg.connect, what SQLAlchemy calls, is an alias bound when psycopg was imported.
    psycopg.connect = psycopg.Connection.connect
    _connection_base.BaseConnection.__del__ = naming_del  # type: ignore[method-assign]
