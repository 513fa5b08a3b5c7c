"""The suite's record of where psycopg connections were opened (tests/support/pg_origins.py), on a real
Postgres: a connection left open is reported, when collected, with the code that opened it."""

from __future__ import annotations

import gc

import psycopg
import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration


def _open_and_forget(conninfo: str) -> None:
    psycopg.connect(conninfo)  # left open on purpose


def test_an_unclosed_connection_is_reported_with_where_it_was_opened(pg_url: str) -> None:
    url = make_url(pg_url)
    conninfo = f"host={url.host} port={url.port or 5432} user={url.username} dbname={url.database}"
    with pytest.warns(ResourceWarning, match=r"(?s)deleted while still open.*_open_and_forget"):
        _open_and_forget(conninfo)
        gc.collect()
