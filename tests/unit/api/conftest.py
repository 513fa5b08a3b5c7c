"""The in-process app for API unit tests: an empty data dir, migrated, with one key of the default tenant."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from pagemill import db, queue
from pagemill.migrate import upgrade_to_head
from pagemill.models import DEFAULT_TENANT
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy import service as tenancy
from pagemill.tenancy.principal import Actor
from tests.support.engines import forget_engine

with warnings.catch_warnings():
    # Starlette 1.x warns at import when the test client runs on httpx rather than httpx2; the lock pins
    # httpx only. Harmless here, and a no-op once httpx2 is a dev dependency.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


def _forget_process_state() -> None:
    get_settings.cache_clear()
    # Closed, not dropped: reset_engine leaves the connections open for a forked child's parent, and an
    # engine left by an earlier module of this test process may be a Postgres one (psycopg warns at GC).
    forget_engine()
    get_blob_store.cache_clear()
    queue.get_celery.cache_clear()


@pytest.fixture
def api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Migrate the data dir's database and make a key of the default tenant; its secret."""
    for name in list(os.environ):
        if name.startswith("PAGEMILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PAGEMILL_DATA_DIR", str(tmp_path))
    _forget_process_state()
    upgrade_to_head()
    with db.session_scope() as session:
        _, secret = tenancy.create_key(
            session, tenant_id=DEFAULT_TENANT, tier="enterprise", actor=Actor(subject="test"), name="test"
        )
    yield secret
    _forget_process_state()


@pytest.fixture
def app(api_key: str) -> Iterator[FastAPI]:
    application = create_app()
    yield application
    _forget_process_state()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # The 500 handler runs in Starlette's ServerErrorMiddleware, which re-raises after answering.
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
