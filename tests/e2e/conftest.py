"""Stacks for the e2e tests: the same flows run embedded (SQLite, local folder, SQLite broker) and
distributed (Postgres, Redis, S3 server)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import services
from tests.support.services import S3Server, distributed_env, embedded_env


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """A running Pagemill in each mode, with the default settings, shared by every module that asks for it:
    each start costs 5-10 s, and the modules that need other settings start their own."""
    shared: Stack = request.getfixturevalue(f"shared_{request.param}_stack")
    return shared


@pytest.fixture(scope="session")
def shared_embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded stack behind ``stack`` (one per test process; its own data folder)."""
    with running_stack(embedded_env(tmp_path_factory.mktemp("embedded-data"))) as running:
        yield running


@pytest.fixture(scope="session")
def shared_distributed_stack(s3: S3Server) -> Iterator[Stack]:
    """The distributed stack behind ``stack``. It lives for the whole session, so it has a database, a Redis
    and a bucket of its own: on the session's shared ones its idle worker would take the tasks of the other
    modules' stacks."""
    with (
        services.postgres_url() as pg_url,
        services.redis_server() as redis,
        running_stack(distributed_env(pg_url, redis.url, s3, bucket="pagemill-shared-stack")) as running,
    ):
        yield running


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder for this test's generated documents."""
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


# Batches, the result cache and retention (tests/e2e/test_batches.py, test_result_cache.py, test_retention.py)
# share one stack per mode: their settings do not collide, and three starts per mode would cost ~30 s.
LIFECYCLE_FREE_PER_DAY = 3
LIFECYCLE_FREE_MAX_ITEMS = 4
LIFECYCLE_FREE_FILE_BYTES = 200_000
LIFECYCLE_ORIGINALS_S = 1
LIFECYCLE_RESULTS_S = 5
LIFECYCLE_LINK_TTL_S = 3


@pytest.fixture(scope="session", params=["embedded", "distributed"])
def lifecycle_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A running Pagemill in each mode with the result cache on (the e2e default turns it off); a free tier
    of 3 documents a day, 4 items per batch and 200 kB per file; standard-tier originals kept 1 s and
    results 5 s (the e2e key is enterprise: the defaults, days); a sweep every second; download links valid
    3 s; and the test document server's address (127.0.0.2) open to URL jobs.

    It lives for the whole session, so it has a database, a Redis and a bucket of its own: on the session's
    shared ones its worker took other tests' tasks (and its 1 s retention deleted their originals)."""
    own = contextlib.ExitStack()
    if request.param == "embedded":
        env = embedded_env(tmp_path_factory.mktemp("lifecycle-embedded"))
    else:
        s3: S3Server = request.getfixturevalue("s3")
        pg_url = own.enter_context(services.postgres_url())
        redis = own.enter_context(services.redis_server())
        env = distributed_env(pg_url, redis.url, s3, bucket="pagemill-lifecycle")
    env.update(
        {
            "PAGEMILL_CACHE__ENABLED": "true",
            "PAGEMILL_TIERS__FREE__DOCUMENTS_PER_DAY": str(LIFECYCLE_FREE_PER_DAY),
            "PAGEMILL_TIERS__FREE__MAX_BATCH_ITEMS": str(LIFECYCLE_FREE_MAX_ITEMS),
            "PAGEMILL_TIERS__FREE__MAX_FILE_BYTES": str(LIFECYCLE_FREE_FILE_BYTES),
            "PAGEMILL_TIERS__STANDARD__ORIGINALS_RETENTION_S": str(LIFECYCLE_ORIGINALS_S),
            "PAGEMILL_TIERS__STANDARD__RESULTS_RETENTION_S": str(LIFECYCLE_RESULTS_S),
            "PAGEMILL_STORAGE__RESULT_URL_TTL_S": str(LIFECYCLE_LINK_TTL_S),
            # Batch URL items are fetched from the test document server (tests.support.egress_servers).
            "PAGEMILL_EGRESS__ALLOW_NETWORKS": '["127.0.0.2/32"]',
        }
    )
    with own, running_stack(env) as running:
        yield running
