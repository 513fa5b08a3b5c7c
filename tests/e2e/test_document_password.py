"""The password of an encrypted PDF never reaches disk or logs in plain text, during or after its job, and the
document still converts.

Embedded mode is where it mattered: SQLite keeps old row images in its write-ahead log and free pages long
after the row is updated, so wiping the column when the job ends was not enough. Every file of the data dir
(job database and its -wal/-shm, broker database, blobs) and the API and worker logs, at DEBUG level, are
searched for the password while the job runs and after it ends.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import FINAL_STATES, TEST_LIMITS, Stack, create_key, migrate, running_stack
from tests.support import documents
from tests.support.services import embedded_env, pagemill_api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("password-data")


@pytest.fixture(scope="module")
def stack(data_dir: Path) -> Iterator[Stack]:
    """An embedded stack logging at DEBUG, so that anything that would print the password does."""
    with running_stack(
        {**embedded_env(data_dir), "PAGEMILL_LOG_LEVEL": "DEBUG", "PAGEMILL_LOG_FORMAT": "text"}
    ) as running:
        yield running


def files_holding(data_dir: Path, needle: bytes) -> list[str]:
    """Every file under ``data_dir`` whose bytes contain ``needle`` (read raw, as an attacker would)."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    found.append(str(path.relative_to(data_dir)))
            except FileNotFoundError:
                continue  # a -journal or temporary file that went away while we looked
    return found


def sealed_password_of(data_dir: Path, job_id: str) -> str | None:
    """The job row's stored password column, read straight from SQLite."""
    with sqlite3.connect(f"file:{data_dir / 'pagemill.sqlite3'}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT document_password_sealed FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row[0]


def test_the_password_is_never_on_disk_or_in_logs_and_the_pdf_converts(
    stack: Stack, data_dir: Path, docs: Path
) -> None:
    password = "pw-" + secrets.token_hex(10)  # unique: any hit is this test's password, nothing else
    needle = password.encode()
    pdf = documents.make_encrypted_pdf(docs / "locked.pdf", password, text="Quarterly figures unlocked")
    # OCR keeps the job running for a while, so the files are also searched mid-job.
    job_id = stack.submit_ok(pdf, password=password, ocr_mode="ocr", formats="text")

    seen_sealed = False
    deadline = time.monotonic() + 120
    while True:
        state = stack.job(job_id)["state"]
        assert files_holding(data_dir, needle) == [], f"plain-text password on disk while {state}"
        if state in FINAL_STATES:
            break
        sealed = sealed_password_of(data_dir, job_id)
        if sealed is not None:
            seen_sealed = True
            assert password not in sealed
        assert time.monotonic() < deadline, stack.worker.log_tail()
        time.sleep(0.05)

    job = stack.job(job_id)
    assert job["state"] == "succeeded", job
    assert "quarterly figures" in stack.result(job_id, "text").text.lower()
    assert seen_sealed, "the job was never seen holding its (sealed) password"
    assert sealed_password_of(data_dir, job_id) is None  # wiped at the end
    assert files_holding(data_dir, needle) == []
    logs = {process.name: process.log_text() for process in (stack.api, stack.worker)}
    debug_lines = re.search(r"\[debug\s*\]", "".join(logs.values()))
    assert debug_lines, "nothing logged at DEBUG: the search would prove little"
    for name, log in logs.items():
        assert password not in log, f"the password is in the {name} log"


def test_a_wrong_password_fails_without_echoing_it(stack: Stack, data_dir: Path, docs: Path) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    pdf = documents.make_encrypted_pdf(docs / "locked.pdf", "the-right-one")
    job = stack.wait(stack.submit_ok(pdf, password=wrong))
    assert job["state"] == "failed" and job["error"]["code"] == "WRONG_PASSWORD", job
    assert wrong not in str(job)
    assert sealed_password_of(data_dir, job["id"]) is None
    assert files_holding(data_dir, wrong.encode()) == []
    assert wrong not in stack.api.log_text() and wrong not in stack.worker.log_text()


def test_the_embedded_key_is_private_to_its_owner(stack: Stack, data_dir: Path) -> None:
    key_file = data_dir / "secret.key"
    assert key_file.exists(), sorted(path.name for path in data_dir.iterdir())
    assert key_file.stat().st_mode & 0o077 == 0, oct(key_file.stat().st_mode)


def test_without_a_key_outside_embedded_mode_a_password_is_refused_before_anything_is_kept(
    pg_url: str, tmp_path: Path, docs: Path
) -> None:
    # A server database makes the mode non-embedded: the data dir is not shared with workers elsewhere,
    # so no key is made there and none is configured.
    env = {**TEST_LIMITS, "PAGEMILL_DATABASE__URL": pg_url, "PAGEMILL_DATA_DIR": str(tmp_path / "data")}
    migrate(env)
    key = str(create_key(env, "nokey", "enterprise")["secret"])
    password = "pw-" + secrets.token_hex(10)
    pdf = documents.make_encrypted_pdf(docs / "locked.pdf", password)
    with pagemill_api(env) as (api, base_url), httpx.Client(base_url=base_url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        with pdf.open("rb") as f:
            refused = client.post(
                "/api/v1/documents", files={"file": ("locked.pdf", f)}, data={"password": password}
            )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "SECRETS_NOT_CONFIGURED" and "PAGEMILL_SECRETS__KEY" in error["message"], (
            error
        )
        assert client.get("/api/v1/jobs").json()["items"] == []  # no job, no quota taken
        assert not list((tmp_path / "data").rglob("source")), "the upload was stored anyway"
        assert files_holding(tmp_path / "data", password.encode()) == []
        assert password not in api.log_text()
        with pdf.open("rb") as f:
            plain = client.post("/api/v1/documents", files={"file": ("locked.pdf", f)})
        assert plain.status_code == 202, plain.text  # documents without a password are unaffected
