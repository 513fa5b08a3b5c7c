"""The stack of the event stream tests (tests/e2e/test_event_streams.py): a running Pagemill in each mode with
fast heartbeats, an event per finished page, a small admission limit and a tight free-tier rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pagemill.settings import Settings
from tests.e2e.stack import Stack, running_stack
from tests.support.event_streams import stored_events
from tests.support.services import TEST_SECRETS_KEY, S3Server, distributed_env, embedded_env

HEARTBEAT_S = 0.5
STREAM_ENV = {
    "PAGEMILL_EVENTS__STREAM_HEARTBEAT_S": str(HEARTBEAT_S),
    # One event per finished page: a job tells a longer story, and a reconnect lands in the middle of it.
    "PAGEMILL_EVENTS__PAGE_EVENTS": "always",
    # Open streams must not use up the admission limit (they hold no thread or connection while waiting).
    "PAGEMILL_API__MAX_CONCURRENT_REQUESTS": "4",
    "PAGEMILL_TIERS__FREE__RATE_LIMIT": "5/minute",
}


@dataclass
class StreamStack:
    """A running stack, the database URL its processes use, and settings that sign tokens as its API does."""

    stack: Stack
    mode: str
    database_url: str
    signing: Settings

    def url(self, path: str, base_url: str | None = None) -> str:
        """The ws:// URL of ``path`` on the stack's API (or on ``base_url``)."""
        return (base_url or self.stack.base_url).replace("http://", "ws://") + path

    def stored_events(self, job_id: str) -> list[tuple[int, str, str]]:
        """(seq, type, CloudEvents id) of the job's events, from the events table."""
        return stored_events(self.database_url, job_id)


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def streams(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamStack]:
    """A running Pagemill in each mode with heartbeats every 0.5 s and an event per finished page."""
    if request.param == "embedded":
        data_dir = tmp_path_factory.mktemp("streams-embedded")
        env = {**embedded_env(data_dir), **STREAM_ENV}
        database_url = f"sqlite:///{data_dir / 'pagemill.sqlite3'}"
        # Embedded mode signs with the key file the API makes in its data folder (read or made here alike).
        signing = Settings(data_dir=data_dir)
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        s3: S3Server = request.getfixturevalue("s3")
        env = {**distributed_env(pg_url, request.getfixturevalue("redis_url"), s3), **STREAM_ENV}
        database_url = pg_url
        signing = Settings(database={"url": pg_url}, secrets={"key": TEST_SECRETS_KEY})
    with running_stack(env) as stack:
        yield StreamStack(stack, request.param, database_url, signing)
