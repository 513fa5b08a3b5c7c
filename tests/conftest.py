"""Suite-wide fixtures: real services, started lazily (only tests that ask for them pay the start-up).

Session-scoped fixtures give one service per pytest process (with xdist: one per worker), so parallel
workers never share a database or a broker. Tests that stop or restart a service must not do it to the
shared ones: they take ``private_redis`` (function-scoped) or use the context managers in
``tests.support.services`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import pg_origins, services
from tests.support.services import RedisServer, S3Server

pg_origins.install()  # a connection some test leaves open is reported with where it was opened

# Workers under test run at default CPU priority. At worker.nice 10 (the default), which since 387f76d also
# sets the worker's session autogroup, a worker gets about a tenth of a core against each busy session: the
# other xdist process's test, or a test's own client. The test of cancelling a running job took 68-89 s
# instead of 5.5 against two busy loops. tests/integration/cli/test_worker_priority.py tests the default.
services.CHILD_ENV_DEFAULTS["PAGEMILL_WORKER__NICE"] = "0"

REPO_ROOT = Path(__file__).resolve().parents[1]

MARKERS = {
    "integration": "uses real services (Postgres, Redis, S3 server, worker processes)",
    "e2e": "whole flows over HTTP against running API and worker processes",
    "corpus": "needs the document corpus (PAGEMILL_CORPUS)",
    "chaos": "processes killed and dependencies restarted under load (tests/e2e/test_chaos.py)",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's markers so ``--strict-markers`` accepts them (unless pyproject already does)."""
    declared = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {description}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty Postgres database for this test session, dropped at the end."""
    with services.postgres_url() as url:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's Redis (a throwaway server when possible). Do not stop it: use ``private_redis``."""
    with services.redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/DB`` of the session's Redis."""
    return redis_server.url


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, safe to stop, kill and restart (skips when none can be spawned)."""
    with services.redis_server() as server:
        if not server.restartable:
            pytest.skip("no redis-server binary: only a shared Redis is available, which cannot restart")
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """An S3-protocol server (moto) with fake credentials for this test session."""
    with services.s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The document corpus: ``$PAGEMILL_CORPUS``, default ``<repo>/../shared/corpus``; skips when absent."""
    path = Path(os.environ.get("PAGEMILL_CORPUS") or REPO_ROOT.parent / "shared" / "corpus").resolve()
    if not path.is_dir():
        pytest.skip(f"corpus not found at {path}: set PAGEMILL_CORPUS")
    return path
