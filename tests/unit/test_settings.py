"""Settings: environment over TOML file over embedded defaults; invalid values refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from pagemill.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("clean_env")


def test_embedded_defaults_live_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    data_dir = (tmp_path / "data").resolve()
    assert settings.data_dir == tmp_path / "data"
    assert settings.database.url is None and settings.broker.url is None
    assert settings.database_url == f"sqlite:///{data_dir / 'pagemill.sqlite3'}"
    assert settings.broker_url == f"sqla+sqlite:///{data_dir / 'broker.sqlite3'}"
    assert settings.blob_path == data_dir / "blobs"
    assert settings.storage.backend == "local"
    assert settings.is_embedded is True


def test_a_relative_data_dir_gives_absolute_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path("pagemill-data")
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'pagemill-data' / 'pagemill.sqlite3'}"
    assert settings.blob_path.is_absolute()


def test_nested_groups_come_from_double_underscore_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("PAGEMILL_STORAGE__S3_BUCKET", "scans")
    monkeypatch.setenv("PAGEMILL_STORAGE__S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("PAGEMILL_WORKER__LEASE_S", "30")
    monkeypatch.setenv("PAGEMILL_OCR__DETECT_ORIENTATION", "false")
    monkeypatch.setenv("PAGEMILL_LOG_JSON", "true")
    settings = Settings()
    assert settings.storage.backend == "s3"
    assert settings.storage.s3_bucket == "scans"
    assert settings.storage.s3_endpoint_url == "http://minio:9000"
    assert settings.storage.s3_region == "us-east-1"  # untouched siblings keep their defaults
    assert settings.worker.lease_s == 30
    assert settings.worker.max_attempts == 3
    assert settings.ocr.detect_orientation is False
    assert settings.log_json is True
    assert settings.is_embedded is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAGEMILL_DATABASE__URL", "postgresql+psycopg://u@db/pagemill"),
        ("PAGEMILL_BROKER__URL", "redis://redis:6379/0"),
        ("PAGEMILL_STORAGE__BACKEND", "s3"),
    ],
)
def test_any_external_service_leaves_embedded_mode(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.is_embedded is False


def test_configured_urls_are_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_DATABASE__URL", "postgresql+psycopg://u@db/pagemill")
    monkeypatch.setenv("PAGEMILL_BROKER__URL", "redis://redis:6379/0")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@db/pagemill"
    assert settings.broker_url == "redis://redis:6379/0"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAGEMILL_STORAGE__BACKEND", "ftp"),
        ("PAGEMILL_API__PORT", "70000"),
        ("PAGEMILL_API__PORT", "eighty"),
        ("PAGEMILL_WORKER__LEASE_S", "1"),
        ("PAGEMILL_LIMITS__MAX_PAGES", "0"),
        ("PAGEMILL_OCR__DPI", "1200"),
        ("PAGEMILL_ENGINES__DEFAULT", "easyocr"),
        ("PAGEMILL_BROKER__VISIBILITY_TIMEOUT_S", "10"),
        ("PAGEMILL_LOG_JSON", "maybe"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_get_settings_loads_once_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_API__PORT", "8111")
    first = get_settings()
    monkeypatch.setenv("PAGEMILL_API__PORT", "8222")
    assert get_settings() is first and first.api.port == 8111
    get_settings.cache_clear()
    assert get_settings().api.port == 8222


def test_public_dict_masks_the_s3_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_STORAGE__S3_SECRET_ACCESS_KEY", "very-secret")
    data = Settings().public_dict()
    assert data["storage"]["s3_secret_access_key"] == "***"
    assert "very-secret" not in json.dumps(data)


# --- TOML file --------------------------------------------------------------------------------------------
# The file named by PAGEMILL_CONFIG_FILE is read into model_config when pagemill.settings is imported, so
# these tests load settings in a fresh interpreter with exactly the environment they set.

_DUMP = textwrap.dedent(
    """
    import json
    from pagemill.settings import get_settings
    s = get_settings()
    print(json.dumps({"settings": s.model_dump(mode="json"), "embedded": s.is_embedded,
                      "database_url": s.database_url}))
    """
)


def _load_in_subprocess(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("PAGEMILL_")}
    base["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-c", _DUMP],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_toml_file_sets_fields_and_the_environment_beats_it(tmp_path: Path) -> None:
    config = tmp_path / "pagemill.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            data_dir = "{tmp_path / "from-toml"}"
            log_level = "DEBUG"

            [database]
            url = "postgresql+psycopg://toml@db/pagemill"

            [storage]
            backend = "s3"
            s3_bucket = "toml-bucket"
            s3_prefix = "toml/"

            [worker]
            lease_s = 120
            """
        )
    )
    result = _load_in_subprocess(
        {
            "PAGEMILL_CONFIG_FILE": str(config),
            "PAGEMILL_STORAGE__S3_BUCKET": "env-bucket",
            "PAGEMILL_LOG_LEVEL": "WARNING",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    settings = loaded["settings"]
    # From the file:
    assert settings["data_dir"] == str(tmp_path / "from-toml")
    assert settings["database"]["url"] == "postgresql+psycopg://toml@db/pagemill"
    assert settings["storage"]["backend"] == "s3"
    assert settings["storage"]["s3_prefix"] == "toml/"
    assert settings["worker"]["lease_s"] == 120
    # The environment wins over the file, also for one field inside a group the file sets:
    assert settings["log_level"] == "WARNING"
    assert settings["storage"]["s3_bucket"] == "env-bucket"
    # Defaults fill whatever neither sets:
    assert settings["storage"]["s3_region"] == "us-east-1"
    assert settings["worker"]["max_attempts"] == 3
    assert loaded["embedded"] is False
    assert loaded["database_url"] == "postgresql+psycopg://toml@db/pagemill"


def test_an_invalid_value_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "pagemill.toml"
    config.write_text('[storage]\nbackend = "ftp"\n')
    result = _load_in_subprocess({"PAGEMILL_CONFIG_FILE": str(config)}, tmp_path)
    assert result.returncode != 0
    assert "ValidationError" in result.stderr and "storage.backend" in result.stderr


def test_without_a_config_file_the_defaults_are_embedded(tmp_path: Path) -> None:
    result = _load_in_subprocess({"PAGEMILL_DATA_DIR": str(tmp_path / "d")}, tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["embedded"] is True
    assert loaded["database_url"] == f"sqlite:///{(tmp_path / 'd').resolve() / 'pagemill.sqlite3'}"


def test_the_engine_chain_is_configured_as_users_write_it(tmp_path: Path) -> None:
    config = tmp_path / "pagemill.toml"
    config.write_text(
        textwrap.dedent(
            """
            [engines]
            default = "vllm"
            fallback = ["remote-openai", "tesseract"]
            max_fallback_attempts = 2

            [engines.vllm]
            base_url = "http://vllm:8000"
            preset = "deepseek-ocr"
            requests_in_flight = 64
            """
        )
    )
    result = _load_in_subprocess(
        {"PAGEMILL_CONFIG_FILE": str(config), "PAGEMILL_ENGINES__REMOTE_OPENAI__API_KEY": "sk-test"}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    engines = json.loads(result.stdout)["settings"]["engines"]
    assert engines["default"] == "vllm"
    assert engines["fallback"] == ["remote-openai", "tesseract"]
    assert engines["max_fallback_attempts"] == 2
    assert engines["vllm"]["base_url"] == "http://vllm:8000" and engines["vllm"]["preset"] == "deepseek-ocr"
    assert engines["vllm"]["requests_in_flight"] == 64
    assert engines["remote_openai"]["api_key"] == "sk-test"

    config.write_text('[engines]\nfallback = ["easyocr"]\n')
    refused = _load_in_subprocess({"PAGEMILL_CONFIG_FILE": str(config)}, tmp_path)
    assert refused.returncode != 0 and "engines.fallback" in refused.stderr
