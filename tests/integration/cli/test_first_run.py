"""What a new user meets on the command line: `pagemill` run from another folder, on a database nobody
migrated, `config show|check`, `--version`, tables in an 80-column terminal. Real `python -m pagemill`
processes, stdout and stderr read apart as a script would."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.services import PYTHON, REPO_ROOT, embedded_env, pagemill_api, postgres_url

pytestmark = pytest.mark.integration


def pagemill(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pagemill ARGS`` in ``cwd`` with no PAGEMILL_* setting but ``env``."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("PAGEMILL_")}
    full_env.pop("COLUMNS", None)
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    full_env["NO_COLOR"] = "1"
    full_env.update(env or {})
    return subprocess.run(
        [PYTHON, "-m", "pagemill", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """Assert the command failed with ``code`` and one line on stderr (no traceback); return that line."""
    assert done.returncode == code, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated embedded data dir with one key, made the way `make up` leaves one."""
    path = tmp_path_factory.mktemp("first-run") / "pagemill-data"
    env = embedded_env(path)
    assert pagemill("migrate", cwd=REPO_ROOT, env=env).returncode == 0
    made = pagemill("keys", "create", "--tenant", "first-run-tenant", "--admin", cwd=REPO_ROOT, env=env)
    assert made.returncode == 0, made.stderr
    return path


def test_version() -> None:
    done = pagemill("--version", cwd=REPO_ROOT)
    assert (done.returncode, done.stdout.strip()) == (0, "pagemill 0.1.0")


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "create", "--tenant", "x"], ["audit"]])
def test_from_another_folder_the_cli_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    line = one_line_error(pagemill(*command, cwd=tmp_path))
    assert f"No Pagemill database at {tmp_path / 'pagemill-data' / 'pagemill.sqlite3'}" in line
    assert "PAGEMILL_DATA_DIR" in line and "pagemill migrate" in line
    assert list(tmp_path.iterdir()) == [], "no empty data dir is left behind"


def test_with_its_data_dir_set_the_cli_works_from_any_folder(tmp_path: Path, data_dir: Path) -> None:
    done = pagemill("keys", "list", "--json", cwd=tmp_path, env=embedded_env(data_dir))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["tenant"] for line in done.stdout.splitlines()] == ["first-run-tenant"]


def test_config_check_from_another_folder_reports_the_missing_database(tmp_path: Path) -> None:
    done = pagemill("config", "check", cwd=tmp_path)
    assert done.returncode == 1
    assert f"data_dir   {tmp_path / 'pagemill-data'}" in done.stdout
    database = next(line for line in done.stdout.splitlines() if line.startswith("database"))
    assert "missing" in database and "ok" not in database.split()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings of a database that exists but has no tables (nobody ran `pagemill migrate`)."""
    env = embedded_env(tmp_path / "data")
    if request.param == "sqlite":
        (tmp_path / "data").mkdir()
        sqlite3.connect(tmp_path / "data" / "pagemill.sqlite3").close()
        return env
    url = request.getfixturevalue("empty_pg_url")
    return {**env, "PAGEMILL_DATABASE__URL": url}


@pytest.fixture
def empty_pg_url() -> object:
    with postgres_url() as url:
        yield url


def test_keys_on_an_unmigrated_database_say_to_migrate(tmp_path: Path, unmigrated: dict[str, str]) -> None:
    for command in (["keys", "create", "--tenant", "acme"], ["keys", "list"], ["audit"]):
        line = one_line_error(pagemill(*command, cwd=tmp_path, env=unmigrated))
        assert "not migrated (it has no Pagemill tables): run `pagemill migrate` first" in line, line


def test_config_check_says_an_unmigrated_database_is_not_ok(
    tmp_path: Path, unmigrated: dict[str, str]
) -> None:
    done = pagemill("config", "check", cwd=tmp_path, env=unmigrated)
    database = next(line for line in done.stdout.splitlines() if line.startswith("database"))
    assert "not migrated" in database and "pagemill migrate" in database, done.stdout
    assert done.returncode == 1


def test_config_show_prints_the_paths_in_force(tmp_path: Path) -> None:
    done = pagemill("config", "show", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    data_dir = tmp_path / "pagemill-data"
    assert shown["data_dir"] == str(data_dir)
    assert shown["database"]["url"] == f"sqlite:///{data_dir / 'pagemill.sqlite3'}"
    assert shown["broker"]["url"] == f"sqla+sqlite:///{data_dir / 'broker.sqlite3'}"
    assert shown["storage"]["local_path"] == str(data_dir / "blobs")
    assert list(tmp_path.iterdir()) == [], "showing settings creates nothing"


def test_config_show_masks_the_database_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://pagemill:hunter2@db.example:5432/pagemill"
    done = pagemill("config", "show", cwd=tmp_path, env={"PAGEMILL_DATABASE__URL": url})
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    assert json.loads(done.stdout)["database"]["url"] == url.replace("hunter2", "***")


def test_keys_list_and_audit_fit_80_columns_with_ids_whole(tmp_path: Path, data_dir: Path) -> None:
    env = {**embedded_env(data_dir), "COLUMNS": "80"}
    created = pagemill(
        "keys", "create", "--tenant", "narrow-terminal", "--name", "[b]x[/b]", "--json", cwd=tmp_path, env=env
    )
    key = json.loads(created.stdout)
    listing = pagemill("keys", "list", "--tenant", "narrow-terminal", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert all(len(line) <= 80 for line in listing.stdout.splitlines()), listing.stdout
    assert key["id"] in listing.stdout and key["prefix"] + "…" in listing.stdout
    assert "[b]x[/b]" in listing.stdout, "a name is shown as written, never as markup"
    created_at = key["created_at"][:10]
    assert created_at in listing.stdout, "every column is shown, not squeezed to '…'"

    audit = pagemill("audit", "--tenant", "narrow-terminal", cwd=tmp_path, env=env)
    assert audit.returncode == 0, audit.stderr
    assert all(len(line) <= 80 for line in audit.stdout.splitlines()), audit.stdout
    assert re.search(rf"key\.create\s+target {key['id']}", audit.stdout), audit.stdout
    assert "narrow-terminal" in audit.stdout and "cli:" in audit.stdout


def test_the_api_is_not_ready_on_an_unmigrated_database(unmigrated: dict[str, str]) -> None:
    with pagemill_api(unmigrated) as (_proc, base_url):
        answer = httpx.get(f"{base_url}/api/v1/health/ready", timeout=30)
    assert answer.status_code == 503, answer.text
    database = answer.json()["checks"]["database"]
    assert "not migrated" in database and "pagemill migrate" in database
    assert "postgresql" not in database and "sqlite" not in database, "no database URL on a public endpoint"
