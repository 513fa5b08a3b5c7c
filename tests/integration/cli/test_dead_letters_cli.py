"""`pagemill dead-letters list|show|replay`: real CLI processes on an embedded data dir.

The dead letters are made in this process, through the worker's own code on the same data dir (a page saved
WORKER_CRASHED or PROCESSING_TIMEOUT, the job finalised), then read and replayed by the command.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pagemill import db, queue
from pagemill.cli.dead_letters import parse_since
from pagemill.errors import PagemillError, ProcessingTimeout, WorkerCrashed
from pagemill.jobs import page_work, processing
from pagemill.jobs import repository as repo
from pagemill.models import AuditEvent, DeadLetter, Job, JobState
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy import audit
from pagemill.tenancy import repository as tenancy_repo
from tests.support.engines import forget_engine
from tests.support.factories import make_job
from tests.support.services import PYTHON, REPO_ROOT, embedded_env, pagemill_process

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded data dir brought to the newest schema by `pagemill migrate`."""
    path = tmp_path_factory.mktemp("dead-letters-cli")
    with pagemill_process(["migrate"], embedded_env(path)) as proc:
        assert proc.wait(120) == 0, proc.log_tail()
    return path


@pytest.fixture
def here(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process on the data dir too (database, blob folder, broker), as a worker there would be."""
    for name in list(os.environ):
        if name.startswith("PAGEMILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PAGEMILL_DATA_DIR", str(data_dir))
    _forget()
    yield
    if queue.get_celery.cache_info().currsize:
        queue.get_celery().close()
    _forget()


def _forget() -> None:
    forget_engine()
    get_settings.cache_clear()
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()


def pagemill(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pagemill ARGS`` on ``data_dir``, stdout and stderr apart."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAGEMILL_")}
    env.pop("COLUMNS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env.update({"NO_COLOR": "1", "COLUMNS": "250", **embedded_env(data_dir)})
    return subprocess.run(
        [PYTHON, "-m", "pagemill", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def failed_job(error: PagemillError, tenant: str = "default") -> str:
    """A one-page job whose page was saved failed with ``error`` and that ended; its id."""
    job_id = str(uuid.uuid4())
    get_blob_store().put_bytes(f"jobs/{job_id}/source", b"%PDF-1.4 stand-in original")
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id, tenant_id=tenant, state=JobState.RUNNING))
        repo.set_planned(session, job_id, 1, [0])
    page_work._save(job_id, None, [(0, None, error)])
    processing.finalize_job(job_id)
    return job_id


def letters(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    out = ok(pagemill(data_dir, "dead-letters", "list", "--json", *args))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def dead_letters_of(job_id: str) -> list[DeadLetter]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(DeadLetter).where(DeadLetter.job_id == job_id)))
        session.expunge_all()
        return rows


def ingest_messages(data_dir: Path, job_id: str) -> int:
    with sqlite3.connect(data_dir / "broker.sqlite3") as conn:
        rows = conn.execute(
            "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ?",
            (queue.INGEST_QUEUE,),
        ).fetchall()
    return sum(job_id in payload for (payload,) in rows)


@pytest.mark.usefixtures("here")
def test_list_then_replay_one_by_id(data_dir: Path) -> None:
    job_id = failed_job(WorkerCrashed(attempts=3))
    [row] = letters(data_dir, "--job", job_id)
    assert (row["category"], row["state"], row["pages"], row["error"]["code"]) == (
        "crash",
        "open",
        [1],
        "WORKER_CRASHED",
    )
    assert row["task"] == {"name": queue.READ_PAGES, "args": [queue.CPU_QUEUE]}
    table = ok(pagemill(data_dir, "dead-letters", "list", "--category", "crash"))
    assert row["id"] in table and job_id in table and "WORKER_CRASHED" in table
    shown = json.loads(ok(pagemill(data_dir, "dead-letters", "show", row["id"])))
    assert shown["id"] == row["id"] and "traceback" in shown

    done = pagemill(data_dir, "dead-letters", "replay", row["id"])

    assert ok(done).strip() == f"replayed {row['id']} (job {job_id})"
    with db.session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state == JobState.RUNNING and job.error_code is None
        actors = session.scalars(
            select(AuditEvent.actor).where(
                AuditEvent.action == audit.DEAD_LETTER_REPLAYED, AuditEvent.target == row["id"]
            )
        ).all()
    assert actors == [f"cli:{getpass.getuser()}"]
    assert ingest_messages(data_dir, job_id) == 1
    assert [(row.state, row.replay_count) for row in dead_letters_of(job_id)] == [("replayed", 1)]

    again = pagemill(data_dir, "dead-letters", "replay", row["id"])
    assert again.returncode == 2
    assert f"error: {row['id']}: REPLAY_NOT_ALLOWED" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.usefixtures("here")
def test_replay_a_category_since_a_time(data_dir: Path) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    with db.session_scope() as session:
        tenancy_repo.ensure_tenant(session, tenant, "standard")
    jobs = [failed_job(ProcessingTimeout(kind="text_chunk", limit_s=60.0), tenant=tenant) for _ in range(3)]

    out = ok(
        pagemill(
            data_dir,
            "dead-letters",
            "replay",
            "--category",
            "timeout",
            "--tenant",
            tenant,
            "--since",
            "1h",
            "--limit",
            "2",
        )
    )

    assert out.strip().splitlines()[-1] == "2 replayed, 0 refused, 1 more open"
    states = {job_id: [row.state for row in dead_letters_of(job_id)] for job_id in jobs}
    assert states == {jobs[0]: ["replayed"], jobs[1]: ["replayed"], jobs[2]: ["open"]}, "oldest first"


def test_usage_mistakes_are_one_line_and_exit_2(data_dir: Path) -> None:
    # Each run costs a process start (seconds on a loaded machine): one per kind of mistake.
    for args, message in (
        (["replay", "some-id", "--category", "crash"], "give dead letter ids, or --category (not both)"),
        (["list", "--since", "yesterday"], "VALIDATION_ERROR"),
    ):
        done = pagemill(data_dir, "dead-letters", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    missing = pagemill(data_dir, "dead-letters", "replay", str(uuid.uuid4()))
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr


def test_since_takes_a_time_or_a_duration() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-30T08:00:00+02:00", now) == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert parse_since("2026-11-30T08:00:00", now) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with pytest.raises(PagemillError):
        parse_since("last tuesday", now)
