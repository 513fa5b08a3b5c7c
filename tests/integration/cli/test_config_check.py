"""`pagemill config check`: a TOML file and the environment validated, then every connection tried for real
(embedded: SQLite files; distributed: Postgres, Redis and an S3 server named in a TOML file), with a line
per check and exit 1 on any failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.services import PYTHON, REPO_ROOT, S3Server, embedded_env, free_port

pytestmark = pytest.mark.integration


def pagemill(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pagemill ARGS`` with no PAGEMILL_* setting but ``env``."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("PAGEMILL_")}
    full_env.update({"PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1", **(env or {})})
    return subprocess.run(
        [PYTHON, "-m", "pagemill", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=180
    )


def lines_of(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The report's lines by their first word (the last of a name wins)."""
    return {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config-check") / "data"
    assert pagemill("migrate", cwd=REPO_ROOT, env=embedded_env(path)).returncode == 0
    return path


def test_an_embedded_setup_passes_every_check_with_its_latency(tmp_path: Path, data_dir: Path) -> None:
    done = pagemill("config", "check", cwd=tmp_path, env=embedded_env(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = lines_of(done)
    assert lines["database"].startswith("database   ok (") and "schema at" in lines["database"]
    assert " ms): sqla+sqlite:///" in lines["broker"]
    assert f"local folder {data_dir / 'blobs'}" in lines["storage"]
    # The default chain is Tesseract alone: it read a page made for the check.
    assert "read the test page as 'Pagemill check 2024'" in lines["tesseract"], lines["tesseract"]
    assert lines["result"] == "result     all checks passed"


def test_unknown_keys_in_the_file_fail_and_unknown_variables_warn(tmp_path: Path, data_dir: Path) -> None:
    config = tmp_path / "pagemill.toml"
    config.write_text('[storage]\nbakend = "local"\n\n[ocr]\ndpi = 200\nlanguage = "eng"\n')
    env = {**embedded_env(data_dir), "PAGEMILL_DATABSE__URL": "sqlite:///elsewhere.db"}
    done = pagemill("config", "check", "--file", "pagemill.toml", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{config}: unknown setting storage.bakend (did you mean storage.backend?)" in done.stdout
    assert "unknown setting ocr.language (did you mean ocr.languages?)" in done.stdout
    assert (
        "warning: PAGEMILL_DATABSE__URL is not a setting: ignored (did you mean PAGEMILL_DATABASE__URL?)"
        in done.stdout
    )
    assert "database   ok" in done.stdout, "the connections are still checked"
    assert lines_of(done)["result"] == "result     2 problem(s)"


def test_a_file_that_is_missing_or_not_toml_is_said_so(tmp_path: Path, data_dir: Path) -> None:
    missing = pagemill(
        "config", "check", cwd=tmp_path, env={**embedded_env(data_dir), "PAGEMILL_CONFIG_FILE": "x.toml"}
    )
    assert missing.returncode == 1
    assert "config     FAILED: x.toml: no such file (PAGEMILL_CONFIG_FILE)" in missing.stdout, missing.stdout

    (tmp_path / "broken.toml").write_text("[ocr\ndpi = 200\n")
    broken = pagemill("config", "check", "--file", "broken.toml", cwd=tmp_path, env=embedded_env(data_dir))
    assert broken.returncode == 2 and "Traceback" not in broken.stderr, broken.stderr
    assert f"pagemill: {tmp_path / 'broken.toml'} (PAGEMILL_CONFIG_FILE) is not valid TOML" in broken.stderr


def test_a_distributed_file_is_checked_against_real_services(
    tmp_path: Path, pg_url: str, redis_url: str, s3: S3Server
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "distributed.toml"
    config.write_text(
        f"""
        [database]
        url = "{pg_url}"
        [broker]
        url = "{redis_url}"
        [storage]
        backend = "s3"
        s3_bucket = "config-check"
        s3_endpoint_url = "{s3.endpoint_url}"
        s3_access_key_id = "{s3.access_key_id}"
        s3_secret_access_key = "{s3.secret_access_key}"
        [engines]
        fallback = ["vllm"]
        [engines.vllm]
        base_url = "{dead}"
        """.replace("\n        ", "\n")
    )
    env = {"PAGEMILL_CONFIG_FILE": str(config)}
    assert pagemill("migrate", cwd=tmp_path, env=env).returncode == 0
    done = pagemill("config", "check", cwd=tmp_path, env=env)
    lines = lines_of(done)
    assert lines["database"].startswith("database   ok (") and "postgresql" in lines["database"], done.stdout
    assert s3.secret_access_key not in done.stdout + done.stderr
    assert lines["broker"].startswith("broker     ok (") and "redis://" in lines["broker"]
    assert lines["storage"].startswith("storage    ok (")
    assert lines["storage"].endswith(f": s3 bucket config-check at {s3.endpoint_url}")
    assert lines["tesseract"].startswith("tesseract  ok (")
    # The chain's model server does not answer: the check fails and says where it looked.
    assert lines["vllm"].startswith("vllm       FAILED (") and f"{dead}: unreachable" in lines["vllm"]
    assert done.returncode == 1

    # Storage pointing nowhere fails too, named; the rest stays ok.
    env["PAGEMILL_STORAGE__S3_ENDPOINT_URL"] = dead
    env["PAGEMILL_STORAGE__S3_TIMEOUT_S"] = "2"
    env["PAGEMILL_ENGINES__FALLBACK"] = "[]"
    down = pagemill("config", "check", cwd=tmp_path, env=env)
    assert down.returncode == 1
    assert lines_of(down)["storage"].startswith("storage    FAILED ("), down.stdout
    assert lines_of(down)["database"].startswith("database   ok")
