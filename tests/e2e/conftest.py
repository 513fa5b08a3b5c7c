"""Stacks for the e2e tests: the same flows run embedded (SQLite, local folder, SQLite broker) and
distributed (Postgres, Redis, S3 server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support.services import S3Server, distributed_env, embedded_env


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running Pagemill in each mode."""
    if request.param == "embedded":
        env = embedded_env(tmp_path_factory.mktemp("embedded-data"))
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        redis_url: str = request.getfixturevalue("redis_url")
        s3: S3Server = request.getfixturevalue("s3")
        env = distributed_env(pg_url, redis_url, s3)
    with running_stack(env) as running:
        yield running


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder for this test's generated documents."""
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder
