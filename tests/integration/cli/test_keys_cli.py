"""`pagemill keys create|list|revoke` and `pagemill audit`: real CLI processes on an embedded data dir.

The data dir is migrated once with `pagemill migrate` (as an operator does); tests use their own tenants.
Stdout and stderr are read separately, as a script piping the output would see them.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from pagemill.db import make_engine
from pagemill.settings import DatabaseSettings, Settings
from pagemill.tenancy import keys, service
from pagemill.tenancy.principal import Principal
from tests.support.services import PYTHON, REPO_ROOT, embedded_env, pagemill_process

pytestmark = pytest.mark.integration

WIDE = {"COLUMNS": "250"}  # a wide terminal: rich tables show every cell whole


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded data dir brought to the newest schema by `pagemill migrate`."""
    path = tmp_path_factory.mktemp("keys-cli")
    with pagemill_process(["migrate"], embedded_env(path)) as proc:
        assert proc.wait(120) == 0, proc.log_tail()
        assert "database is up to date" in proc.log_text()
    return path


@pytest.fixture
def tenant() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def pagemill(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pagemill ARGS`` on ``data_dir``, like tests.support.services.pagemill_process does,
    but with stdout and stderr captured apart."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("PAGEMILL_")}
    full_env.pop("COLUMNS", None)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env["_TYPER_STANDARD_TRACEBACK"] = "1"
    full_env["NO_COLOR"] = "1"
    full_env.update(embedded_env(data_dir))
    full_env.update(env or {})
    return subprocess.run(
        [PYTHON, "-m", "pagemill", *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def create_json(data_dir: Path, tenant: str, *args: str) -> dict[str, Any]:
    out = json.loads(ok(pagemill(data_dir, "keys", "create", "--tenant", tenant, "--json", *args)))
    assert isinstance(out, dict)
    return out


@pytest.fixture
def authenticate(data_dir: Path) -> Iterator[Any]:
    """Check a secret against the data dir's database, in this process, as the API would."""
    settings = Settings(
        data_dir=data_dir, database=DatabaseSettings(url=f"sqlite:///{data_dir / 'pagemill.sqlite3'}")
    )
    engine = make_engine(settings)

    def check(secret: str) -> Principal:
        with Session(engine) as session, session.begin():
            return service.authenticate_key(session, settings, secret)

    try:
        yield check
    finally:
        engine.dispose()


# --- keys create --------------------------------------------------------------------------------------------


def test_keys_create_prints_the_secret_once(data_dir: Path, tenant: str, authenticate: Any) -> None:
    done = pagemill(data_dir, "keys", "create", "--tenant", tenant, "--tier", "free", "--name", "ci")
    out = ok(done)
    lines = out.strip().splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith("key key_") and f"for tenant {tenant}" in lines[0]
    assert "not shown again" in lines[0]
    secret = lines[1].strip()
    assert keys.looks_like_key(secret)
    assert out.count(secret) == 1 and secret not in done.stderr
    key_id = lines[0].split()[1]

    principal = authenticate(secret)
    assert (principal.tenant_id, principal.tier, principal.rate_key) == (tenant, "free", key_id)
    assert not principal.is_admin


def test_keys_create_json_has_the_secret_and_the_key(data_dir: Path, tenant: str, authenticate: Any) -> None:
    before = datetime.now(UTC)
    out = create_json(
        data_dir, tenant, "--tier", "enterprise", "--name", "deploy", "--admin", "--expires-in-days", "1.5"
    )
    assert set(out) == {
        "id",
        "tenant",
        "prefix",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "secret",
    }
    assert keys.looks_like_key(out["secret"]) and out["prefix"] == keys.display_prefix(out["secret"])
    assert (out["tenant"], out["name"], out["scopes"], out["revoked_at"]) == (
        tenant,
        "deploy",
        ["admin"],
        None,
    )
    expires = datetime.fromisoformat(out["expires_at"])
    assert before + timedelta(days=1.5) <= expires <= datetime.now(UTC) + timedelta(days=1.5)
    principal = authenticate(out["secret"])
    assert principal.is_admin and principal.tier == "enterprise" and principal.rate_key == out["id"]


def test_the_secret_is_not_stored_anywhere_in_the_data_dir(data_dir: Path, tenant: str) -> None:
    secret = create_json(data_dir, tenant)["secret"]
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert secret.encode() not in content, path
            assert secret[16:].encode() not in content, path


def test_keys_create_refuses_a_bad_tenant(data_dir: Path) -> None:
    done = pagemill(data_dir, "keys", "create", "--tenant", "Bad Tenant!")
    assert done.returncode == 2
    assert "VALIDATION_ERROR" in done.stderr and "tenant id" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


@pytest.mark.parametrize("days", ["0", "-1"])
def test_keys_create_never_makes_a_key_that_outlives_the_expiry_asked_for(
    data_dir: Path, tenant: str, days: str
) -> None:
    # An expiry of 0 (or fewer) days is no expiry the key can meet: refused, never "does not expire".
    done = pagemill(data_dir, "keys", "create", "--tenant", tenant, "--expires-in-days", days, "--json")
    assert done.returncode == 2, f"created a key: {done.stdout}"
    assert "VALIDATION_ERROR" in done.stderr and "expires_at" in done.stderr
    assert ok(pagemill(data_dir, "keys", "list", "--tenant", tenant, "--json")) == ""


def test_keys_create_refuses_an_unknown_tier(data_dir: Path, tenant: str) -> None:
    done = pagemill(data_dir, "keys", "create", "--tenant", tenant, "--tier", "platinum")
    assert done.returncode == 2
    assert "VALIDATION_ERROR" in done.stderr and "tier" in done.stderr
    assert ok(pagemill(data_dir, "keys", "list", "--tenant", tenant, "--json")) == ""


# --- keys list and revoke -----------------------------------------------------------------------------------


def test_keys_list_shows_the_prefix_but_never_the_secret(data_dir: Path, tenant: str) -> None:
    first = create_json(data_dir, tenant, "--name", "first")
    second = create_json(data_dir, tenant, "--name", "second")

    rows = json_lines(ok(pagemill(data_dir, "keys", "list", "--tenant", tenant, "--json")))
    assert [row["id"] for row in rows] == [second["id"], first["id"]], "newest first"
    for row, created in zip(rows, (second, first), strict=True):
        assert "secret" not in row
        assert row["prefix"] == created["prefix"] and row["tenant"] == tenant
        assert created["secret"] not in json.dumps(row)

    table = pagemill(data_dir, "keys", "list", "--tenant", tenant, env=WIDE)
    out = ok(table)
    for created in (first, second):
        assert created["prefix"] in out and created["id"] in out
        assert created["secret"] not in out and created["secret"] not in table.stderr
        assert created["secret"][16:24] not in out
    assert "first" in out and "second" in out

    # Without --tenant: every tenant's keys.
    theirs = create_json(data_dir, f"{tenant}-other")
    every = {row["id"] for row in json_lines(ok(pagemill(data_dir, "keys", "list", "--json")))}
    assert {first["id"], second["id"], theirs["id"]} <= every


def test_keys_list_output_keeps_ids_and_prefixes_whole_when_piped(data_dir: Path, tenant: str) -> None:
    # A pipe (no terminal, no COLUMNS) is how `pagemill keys list | grep` and `docker exec` without -t see it;
    # the key id must come out whole to be revoked, and the prefix to recognise the key.
    created = create_json(data_dir, tenant, "--name", "piped")
    out = ok(pagemill(data_dir, "keys", "list", "--tenant", tenant))
    assert created["id"] in out, out
    assert created["prefix"] in out, out


def test_revoke_then_list_all_shows_the_key_revoked(data_dir: Path, tenant: str, authenticate: Any) -> None:
    kept = create_json(data_dir, tenant, "--name", "kept")
    gone = create_json(data_dir, tenant, "--name", "gone")

    out = ok(pagemill(data_dir, "keys", "revoke", gone["id"]))
    assert out.startswith(f"revoked {gone['id']} at ")

    active = json_lines(ok(pagemill(data_dir, "keys", "list", "--tenant", tenant, "--json")))
    assert [row["id"] for row in active] == [kept["id"]]
    everything = json_lines(ok(pagemill(data_dir, "keys", "list", "--tenant", tenant, "--all", "--json")))
    by_id = {row["id"]: row for row in everything}
    assert set(by_id) == {kept["id"], gone["id"]}
    assert by_id[kept["id"]]["revoked_at"] is None
    revoked_at = datetime.fromisoformat(by_id[gone["id"]]["revoked_at"])
    assert revoked_at <= datetime.now(UTC)

    table = ok(pagemill(data_dir, "keys", "list", "--tenant", tenant, "--all", env=WIDE))
    gone_line = next(line for line in table.splitlines() if gone["id"] in line)
    assert revoked_at.strftime("%Y-%m-%d %H:%M:%SZ") in gone_line
    kept_line = next(line for line in table.splitlines() if kept["id"] in line)
    assert kept_line.count(" - ") >= 2, "a kept key shows '-' for revoked (and for expires)"

    # The CLI's revocation is what the API sees on its next request.
    with pytest.raises(Exception, match="revoked"):
        authenticate(gone["secret"])
    assert authenticate(kept["secret"]).rate_key == kept["id"]

    # Revoking again is not an error and keeps the first time.
    assert ok(pagemill(data_dir, "keys", "revoke", gone["id"])) == out


def test_revoking_an_unknown_key_exits_2_with_not_found(data_dir: Path) -> None:
    done = pagemill(data_dir, "keys", "revoke", "key_0000000000000000")
    assert done.returncode == 2
    assert "NOT_FOUND" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


# --- audit --------------------------------------------------------------------------------------------------


def test_audit_shows_creation_and_revocation_by_the_cli_user(data_dir: Path, tenant: str) -> None:
    actor = f"cli:{getpass.getuser()}"
    key = create_json(data_dir, tenant, "--tier", "free", "--name", "audited")
    ok(pagemill(data_dir, "keys", "revoke", key["id"]))

    events = json_lines(ok(pagemill(data_dir, "audit", "--tenant", tenant, "--json")))
    assert [(e["action"], e["target"], e["actor"]) for e in events] == [
        ("key.revoke", key["id"], actor),
        ("key.create", key["id"], actor),
    ]
    created = events[1]
    assert created["tenant"] == tenant and created["ip"] is None and created["request_id"] is None
    assert created["details"] == {"prefix": key["prefix"], "scopes": [], "tier": "free", "name": "audited"}
    assert key["secret"] not in json.dumps(events)
    assert datetime.fromisoformat(events[0]["at"]) >= datetime.fromisoformat(events[1]["at"])

    only_revokes = json_lines(
        ok(pagemill(data_dir, "audit", "--tenant", tenant, "--action", "key.revoke", "--json"))
    )
    assert [e["action"] for e in only_revokes] == ["key.revoke"]
    newest = json_lines(ok(pagemill(data_dir, "audit", "--tenant", tenant, "--limit", "1", "--json")))
    assert [e["action"] for e in newest] == ["key.revoke"]
    recent = json_lines(ok(pagemill(data_dir, "audit", "--tenant", tenant, "--since-hours", "1", "--json")))
    assert len(recent) == 2

    table = ok(pagemill(data_dir, "audit", "--tenant", tenant, env=WIDE))
    for action in ("key.create", "key.revoke"):
        line = next(line for line in table.splitlines() if action in line)
        assert actor in line and key["id"] in line and tenant in line
