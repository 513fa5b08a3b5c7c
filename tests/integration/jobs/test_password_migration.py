"""The migration that seals document passwords, on SQLite and Postgres: the plain-text column goes, the
passwords of running jobs are sealed with the configured key (or dropped without one), and a downgrade
gives them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from pagemill import db
from pagemill.models import DEFAULT_TENANT
from pagemill.secret_box import open_secret
from pagemill.settings import get_settings
from tests.support.migrations import at_revision, downgrade_to, reload_database, upgrade

pytestmark = pytest.mark.integration

BEFORE = "5b2f0c7e9a41"  # the revision before the password was sealed


@pytest.fixture
def at_previous_revision(database: str) -> Iterator[str]:
    """The module's database taken back to the revision with the plain-text column; head again after."""
    with at_revision(BEFORE):
        yield database


_COLUMNS = {
    "tenant_id": DEFAULT_TENANT,
    "priority": 0,
    "state": "running",
    "cancel_requested": False,
    "filename": "a.pdf",
    "kind": "pdf",
    "size_bytes": 1,
    "sha256": "0" * 64,
    "source_key": "k",
    "options": "{}",
    "pages_done": 0,
    "pages_failed": 0,
    "attempts": 1,
    "requeues": 0,
    "created_at": "2026-11-29 10:00:00",
    "updated_at": "2026-11-29 10:00:00",
}


def _insert_plain(password: str | None) -> str:
    """A running job as the previous revision stored it: its password in plain text."""
    job_id = str(uuid.uuid4())
    values = {"id": job_id, "document_password": password, **_COLUMNS}
    jobs = sa.table("jobs", *(sa.column(name) for name in values))
    with db.get_engine().begin() as conn:
        conn.execute(sa.insert(jobs).values(values))
    return job_id


def _columns() -> set[str]:
    return {column["name"] for column in sa.inspect(db.get_engine()).get_columns("jobs")}


def _sealed(job_id: str) -> str | None:
    with db.get_engine().connect() as conn:
        value = conn.execute(
            sa.text("SELECT document_password_sealed FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar()
    return None if value is None else str(value)


def test_running_jobs_keep_their_password_sealed(
    at_previous_revision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGEMILL_SECRETS__KEY", Fernet.generate_key().decode())
    reload_database()
    with_password, without = _insert_plain("open-sesame-1234"), _insert_plain(None)

    upgrade()

    assert "document_password" not in _columns()
    sealed = _sealed(with_password)
    assert sealed is not None and "open-sesame-1234" not in sealed
    assert open_secret(sealed, get_settings()) == "open-sesame-1234"
    assert _sealed(without) is None

    downgrade_to(BEFORE)
    with db.get_engine().connect() as conn:
        restored = conn.execute(
            sa.text("SELECT document_password FROM jobs WHERE id = :id"), {"id": with_password}
        ).scalar()
    assert restored == "open-sesame-1234"


def test_without_a_key_the_passwords_are_dropped_not_kept_plain(at_previous_revision: str) -> None:
    if at_previous_revision == "sqlite":
        pytest.skip("embedded mode always has a key (made in the data dir)")
    job_id = _insert_plain("open-sesame-5678")
    upgrade()
    assert "document_password" not in _columns()
    assert _sealed(job_id) is None
