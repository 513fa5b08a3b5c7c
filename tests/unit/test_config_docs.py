"""docs/configuration.md is generated from pagemill/settings.py and must match it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "gen_config_docs.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )


def test_configuration_doc_is_current() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stderr or result.stdout


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# Configuration\n", encoding="utf-8")
    result = _run("--check", "--output", str(stale))
    assert result.returncode == 1
    assert "stale" in result.stderr


def test_documented_names_are_the_ones_settings_read(tmp_path: Path) -> None:
    # The doc promises PAGEMILL_GROUP__NAME variables, TOML tables like [storage], and env over TOML.
    config = tmp_path / "pagemill.toml"
    config.write_text('log_level = "DEBUG"\n[storage]\ns3_bucket = "from-toml"\ns3_region = "toml-region"\n')
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("PAGEMILL_")}
    env |= {
        "PAGEMILL_CONFIG_FILE": str(config),
        "PAGEMILL_DATA_DIR": str(tmp_path / "data"),
        "PAGEMILL_STORAGE__S3_REGION": "env-region",
    }
    code = (
        "from pagemill.settings import Settings; s = Settings(); "
        "print(s.data_dir.name, s.log_level, s.storage.s3_bucket, s.storage.s3_region)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["data", "DEBUG", "from-toml", "env-region"]
