"""The process's engine under concurrency, on SQLite and Postgres: a full pool is a 503 with Retry-After,
never a crash; SQLite's writers queue in-process and every way a transaction ends lets the next writer in."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from pagemill import db
from pagemill.errors import DependencyUnavailable
from pagemill.models import Tenant
from pagemill.settings import get_settings
from pagemill.tenancy import repository as tenancy_repo
from tests.support.engines import forget_engine

pytestmark = pytest.mark.integration


def _reload(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forget_engine()
    get_settings.cache_clear()


@pytest.fixture
def tight(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module's database with an 11-connection pool, a 0.5 s pool wait and a 3 s SQLite lock wait."""
    _reload(
        monkeypatch,
        PAGEMILL_DATABASE__POOL_SIZE="1",
        PAGEMILL_DATABASE__POOL_TIMEOUT_S="0.5",
        PAGEMILL_DATABASE__SQLITE_BUSY_TIMEOUT_S="3",
        PAGEMILL_API__MAX_CONCURRENT_REQUESTS="1",
        PAGEMILL_ENGINES__VLLM__REQUESTS_IN_FLIGHT="1",
    )
    yield database
    monkeypatch.undo()
    _reload(monkeypatch)


def test_a_full_pool_is_server_busy_with_retry_after(tight: str) -> None:
    capacity = db.pool_capacity(get_settings())
    assert capacity == 11
    held = [db.get_engine().connect() for _ in range(capacity)]
    try:
        with pytest.raises(DependencyUnavailable) as caught, db.session_scope() as session:
            session.execute(select(1))
        assert caught.value.http_status == 503
        assert caught.value.headers()["Retry-After"] == "1"
    finally:
        for connection in held:
            connection.close()
    with db.session_scope() as session:  # connections handed back: served again
        assert session.execute(select(1)).scalar() == 1


def test_concurrent_writers_all_commit_and_failed_ones_let_the_next_in(tight: str) -> None:
    # As many threads as the pool has connections, as in the API (its thread pool matches the pool): the
    # only wait left is SQLite's one writer, and that queue must keep moving.
    threads, rounds = db.pool_capacity(get_settings()), 6
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(index: int) -> None:
        start.wait()
        for round_number in range(rounds):
            try:
                with db.session_scope() as session:
                    # A read first, then writes: the shape of a submission's transaction.
                    session.execute(select(Tenant.id).limit(1)).all()
                    tenancy_repo.ensure_tenant(session, f"w{index}-{round_number}", "free")
                    if round_number % 3 == 2:
                        raise RuntimeError("fails after its first write: must roll back and release")
            except RuntimeError:
                continue
            except BaseException as exc:  # DependencyUnavailable here would mean a writer never let go
                errors.append(exc)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors[:3]
    with db.session_scope() as session:
        names = set(session.scalars(select(Tenant.id).where(Tenant.id.like("w%"))))
    expected = {f"w{i}-{r}" for i in range(threads) for r in range(rounds) if r % 3 != 2}
    assert names == expected
