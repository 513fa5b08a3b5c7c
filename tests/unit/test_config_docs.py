"""docs/configuration.md is generated from pagemill/settings/ and must match it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pagemill.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "gen_config_docs.py"
DOC = REPO_ROOT / "docs" / "configuration.md"
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")  # a table cell may hold an escaped pipe: `"a"` \| `"b"`


def _leaves(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every leaf field of ``model`` (nested groups walked), by dotted name, with its declared FieldInfo."""
    leaves: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves |= _leaves(annotation, f"{prefix}{name}.")
        else:
            leaves[f"{prefix}{name}"] = field
    return leaves


def _documented() -> dict[str, tuple[str, str]]:
    """Settings rows of docs/configuration.md: dotted name -> (environment variable, default cell)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in CELL_SEPARATOR.split(line)[1:-1]]
        if len(cells) == 6 and cells[1].startswith("`PAGEMILL_"):
            name = cells[0].strip("`")
            assert name not in rows, f"{name} is documented twice"
            rows[name] = (cells[1].strip("`"), cells[4])
    return rows


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


def test_every_setting_is_documented() -> None:
    # The full set of leaves, walked here independently of the generator: a generator that skips a group
    # (as it once skipped engines.vllm, auth.oidc and tiers.*) leaves them out of the file it checks too.
    expected = set(_leaves(Settings))
    documented = _documented()
    assert len(expected) > 100
    assert sorted(expected - documented.keys()) == [], "settings missing from docs/configuration.md"
    assert sorted(documented.keys() - expected) == [], "documented settings that do not exist"
    for name, (env, _) in documented.items():
        assert env == "PAGEMILL_" + "__".join(part.upper() for part in name.split(".")), name


def _expected_default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{item}"' if isinstance(item, str) else str(item) for item in value) + "]`"
    return f"`{value}`"


def test_documented_defaults_are_the_defaults_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PAGEMILL_"):
            monkeypatch.delenv(name)
    settings = Settings()
    wrong = {}
    for name, (_, cell) in _documented().items():
        value: Any = settings
        for part in name.split("."):
            value = getattr(value, part)
        if not cell.startswith(_expected_default(value)):
            wrong[name] = (cell, value)
    assert not wrong, f"documented default != default in force: {wrong}"


def test_a_partly_set_group_keeps_its_other_defaults() -> None:
    # Setting one field of a group (PAGEMILL_ENGINES__REMOTE_OPENAI__BASE_URL) rebuilds the group from its
    # class: a default that only the parent's default instance carries is then silently lost. So every
    # group's defaults must be its class's own (a subclass per variant, as the tiers do).
    def walk(model: type[BaseModel], prefix: str = "") -> list[str]:
        lost = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                if field.get_default(call_default_factory=True) != annotation():
                    lost.append(f"{prefix}{name}")
                lost += walk(annotation, f"{prefix}{name}.")
        return lost

    assert walk(Settings) == []


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# Configuration\n", encoding="utf-8")
    result = _run("--check", "--output", str(stale))
    assert result.returncode == 1
    assert "stale" in result.stderr


def test_documented_names_are_the_ones_settings_read(tmp_path: Path) -> None:
    # The doc promises PAGEMILL_GROUP__NAME variables, TOML tables like [storage], and env over TOML.
    config = tmp_path / "pagemill.toml"
    config.write_text(
        'log_level = "DEBUG"\n[storage]\ns3_bucket = "from-toml"\ns3_region = "toml-region"\n'
        '[auth.oidc]\nissuer = "https://issuer.example"\n'
    )
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("PAGEMILL_")}
    env |= {
        "PAGEMILL_CONFIG_FILE": str(config),
        "PAGEMILL_DATA_DIR": str(tmp_path / "data"),
        "PAGEMILL_STORAGE__S3_REGION": "env-region",
        "PAGEMILL_ENGINES__REMOTE_OPENAI__BASE_URL": "http://model.example",
        "PAGEMILL_ENGINES__FALLBACK": '["remote-openai"]',
        "PAGEMILL_TIERS__FREE__MAX_PAGES": "7",
    }
    code = (
        "from pagemill.settings import Settings; s = Settings(); "
        "print(s.data_dir.name, s.log_level, s.storage.s3_bucket, s.storage.s3_region, s.auth.oidc.issuer, "
        "s.engines.remote_openai.base_url, s.engines.remote_openai.model, ','.join(s.engines.fallback), "
        "s.tiers.free.max_pages, s.tiers.free.rate_limit)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "data",
        "DEBUG",
        "from-toml",
        "env-region",
        "https://issuer.example",
        "http://model.example",
        "gpt-4o-mini",  # the group's other defaults stay when one of its settings is given
        "remote-openai",
        "7",
        "60/minute",
    ]
