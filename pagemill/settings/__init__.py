"""All of Pagemill's settings, in one place.

Settings come from, highest priority first: environment variables (prefix ``PAGEMILL_``, nested groups joined
by ``__``, e.g. ``PAGEMILL_STORAGE__BACKEND=s3``), a TOML file named by ``PAGEMILL_CONFIG_FILE``, then the
defaults below. The defaults are the embedded mode: SQLite, a local blob folder and an SQLite-backed broker,
all under ``PAGEMILL_DATA_DIR``. Setting a database URL, a broker URL and ``storage.backend = "s3"`` turns
the same code base into the distributed mode.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pagemill.settings.access import (
    TIER_NAMES,
    ApiSettings,
    AuthSettings,
    DocumentQuota,
    EnterpriseTier,
    FileBytes,
    FreeTier,
    OidcSettings,
    PagesPerDocument,
    Priority,
    RateLimit,
    SecretsSettings,
    StandardTier,
    TierName,
    TierSettings,
    TiersSettings,
)
from pagemill.settings.audio import AudioEngineName, AudioSettings, WhisperServerSettings
from pagemill.settings.cache import CacheSettings
from pagemill.settings.dead_letters import DeadLetterSettings
from pagemill.settings.egress import EgressSettings
from pagemill.settings.events import EventSettings, masked_nats_url
from pagemill.settings.processing import (
    EngineName,
    EngineSettings,
    LimitSettings,
    OcrSettings,
    OpenAiEngineSettings,
    RemoteOpenAiEngineSettings,
    WorkerSettings,
)
from pagemill.settings.services import (
    BrokerSettings,
    DatabaseSettings,
    StorageSettings,
)
from pagemill.settings.uploads import UploadSettings
from pagemill.settings.webhooks import WebhookSettings


class Settings(BaseSettings):
    """Every Pagemill setting. Load with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="PAGEMILL_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file=os.environ.get("PAGEMILL_CONFIG_FILE") or None,
        # A value that fails validation may be a secret (a key, a password in a URL): never echo it.
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(default=Path("pagemill-data"), description="Folder for all embedded-mode state.")
    log_level: str = Field(default="INFO", description="Log level.")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines as JSON objects (`json`), as readable text (`text`), or `auto`: text when "
        "stderr is a terminal, JSON otherwise (containers, files, log shippers).",
    )
    log_json: bool | None = Field(
        default=None,
        description="Older switch, kept working: true means log_format json, false means text. Unset: "
        "log_format decides.",
    )
    database: DatabaseSettings = DatabaseSettings()
    broker: BrokerSettings = BrokerSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()
    ocr: OcrSettings = OcrSettings()
    engines: EngineSettings = EngineSettings()
    audio: AudioSettings = AudioSettings()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    tiers: TiersSettings = TiersSettings()
    secrets: SecretsSettings = SecretsSettings()
    uploads: UploadSettings = UploadSettings()
    egress: EgressSettings = EgressSettings()
    cache: CacheSettings = CacheSettings()
    events: EventSettings = EventSettings()
    webhooks: WebhookSettings = WebhookSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment over TOML file over defaults."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def database_url(self) -> str:
        """The database URL in force (SQLite in the data dir unless set)."""
        return self.database.url or f"sqlite:///{(self.data_dir / 'pagemill.sqlite3').resolve()}"

    @property
    def broker_url(self) -> str:
        """The broker URL in force (an SQLite broker in the data dir unless set)."""
        return self.broker.url or f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite3').resolve()}"

    @property
    def blob_path(self) -> Path:
        """The local blob folder in force."""
        return (self.storage.local_path or self.data_dir / "blobs").resolve()

    @property
    def rate_limit_storage_url(self) -> str:
        """Where request counters live: set explicitly, else the broker's Redis, else this process."""
        if self.auth.rate_limit_storage_url:
            return self.auth.rate_limit_storage_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "memory://"

    @property
    def is_embedded(self) -> bool:
        """True when no external service is configured."""
        return self.database.url is None and self.broker.url is None and self.storage.backend == "local"

    def public_dict(self) -> dict[str, Any]:
        """Settings with secrets masked, for `pagemill config show`."""
        from sqlalchemy.engine import make_url

        data = self.model_dump(mode="json")
        if data["auth"].get("rate_limit_storage_url"):
            url = make_url(data["auth"]["rate_limit_storage_url"])
            data["auth"]["rate_limit_storage_url"] = url.render_as_string(hide_password=True)
        for group in ("database", "broker"):
            if data[group].get("url"):
                data[group]["url"] = make_url(data[group]["url"]).render_as_string(hide_password=True)
        for engine in ("vllm", "remote_openai"):
            if data["engines"][engine].get("api_key"):
                data["engines"][engine]["api_key"] = "***"
        if data["storage"].get("s3_secret_access_key"):
            data["storage"]["s3_secret_access_key"] = "***"  # noqa: S105 - a mask, not a secret
        if data["events"].get("nats_url"):
            data["events"]["nats_url"] = masked_nats_url(data["events"]["nats_url"])
        return data


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return Settings()


__all__ = [
    "TIER_NAMES",
    "ApiSettings",
    "AudioEngineName",
    "AudioSettings",
    "AuthSettings",
    "BrokerSettings",
    "CacheSettings",
    "DatabaseSettings",
    "DeadLetterSettings",
    "DocumentQuota",
    "EgressSettings",
    "EngineName",
    "EngineSettings",
    "EnterpriseTier",
    "EventSettings",
    "FileBytes",
    "FreeTier",
    "LimitSettings",
    "OcrSettings",
    "OidcSettings",
    "OpenAiEngineSettings",
    "PagesPerDocument",
    "Priority",
    "RateLimit",
    "RemoteOpenAiEngineSettings",
    "SecretsSettings",
    "Settings",
    "StandardTier",
    "StorageSettings",
    "TierName",
    "TierSettings",
    "TiersSettings",
    "WebhookSettings",
    "WhisperServerSettings",
    "WorkerSettings",
    "get_settings",
]
