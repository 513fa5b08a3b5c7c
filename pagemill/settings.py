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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class DatabaseSettings(BaseModel):
    """The job database: the source of truth."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db. Default: SQLite in data dir.",
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept open per process (Postgres).")
    connect_timeout_s: int = Field(default=5, ge=1, description="Timeout for opening a connection.")


class BrokerSettings(BaseModel):
    """The Celery broker that carries job and page ids to the workers."""

    url: str | None = Field(
        default=None,
        description="Celery broker URL, e.g. redis://host:6379/0. Default: an SQLite broker in the data dir.",
    )
    visibility_timeout_s: int = Field(
        default=3600,
        ge=60,
        description="Redis: seconds before an unacked task is redelivered; keep above the task time limit.",
    )


class StorageSettings(BaseModel):
    """Where originals and results are kept."""

    backend: Literal["local", "s3"] = Field(default="local", description="Blob store: a local folder or S3.")
    local_path: Path | None = Field(
        default=None, description="Folder for the local store. Default: DATA_DIR/blobs."
    )
    s3_bucket: str = Field(default="pagemill", description="S3 bucket (created if missing).")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint, e.g. http://minio:9000.")
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key id (else the AWS chain).")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret key (else the AWS chain).")
    s3_timeout_s: int = Field(default=30, ge=1, description="Connect and read timeout for S3 calls.")


class LimitSettings(BaseModel):
    """Limits that keep hostile or oversized input from hurting the service."""

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest accepted upload.")
    max_pages: int = Field(default=5000, ge=1, description="Most pages a document may have.")
    max_image_pixels: int = Field(
        default=200_000_000, ge=1, description="Most pixels an input image (or one TIFF frame) may have."
    )
    render_max_pixels: int = Field(
        default=40_000_000,
        ge=1_000_000,
        description="Pixel budget for one rendered PDF page; larger pages are rendered at a lower DPI.",
    )
    probe_timeout_s: int = Field(default=60, ge=1, description="Time allowed to open and inspect a document.")
    probe_memory_mb: int = Field(
        default=1024, ge=64, description="Address-space cap for inspecting a document."
    )


class OcrSettings(BaseModel):
    """CPU OCR and the text-layer decision."""

    languages: str = Field(default="eng", description="Tesseract languages, e.g. 'eng+deu'.")
    dpi: int = Field(default=300, ge=72, le=600, description="Render resolution for OCR.")
    detect_orientation: bool = Field(
        default=True, description="Detect 90/180/270 degree rotation before OCR."
    )
    text_layer_min_chars: int = Field(
        default=16, ge=0, description="A page whose text layer has fewer usable characters goes to OCR."
    )
    timeout_s: int = Field(default=180, ge=1, description="Time allowed for OCR of one page.")


EngineName = Literal["tesseract", "rapidocr", "vllm", "remote-openai"]
"""Every engine that can read a page needing OCR."""


class OpenAiEngineSettings(BaseModel):
    """An OCR vision-language model behind an OpenAI-compatible chat completions API (vLLM or hosted)."""

    base_url: str | None = Field(
        default=None,
        description="Server root, e.g. http://vllm:8000 (the engine posts to /v1/chat/completions).",
    )
    model: str = Field(default="deepseek-ai/DeepSeek-OCR", description="Model name as the server serves it.")
    preset: Literal["deepseek-ocr", "olmocr", "dots-ocr", "nanonets-ocr", "generic"] = Field(
        default="generic", description="Prompt, image size, token budget and output clean-up for the model."
    )
    api_key: str | None = Field(default=None, description="Bearer token for the server, if it needs one.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Timeout for connecting to the server.")
    timeout_s: float = Field(default=300.0, gt=0, description="Timeout for one page's completion.")
    max_retries: int = Field(default=3, ge=0, description="Retries of transient failures (429, 503, drops).")
    retry_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles, with jitter.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Output token cap (default: the preset's)."
    )
    temperature: float | None = Field(
        default=None, ge=0, description="Sampling temperature (default: preset's)."
    )
    image_max_side: int | None = Field(
        default=None, ge=64, description="Longest image side sent to the model, px (default: the preset's)."
    )
    requests_in_flight: int = Field(
        default=32, ge=1, description="Pages a GPU worker keeps in flight (its thread pool size)."
    )


class EngineSettings(BaseModel):
    """Which engine reads pages that need OCR, and what to fall back to."""

    default: EngineName = Field(
        default="tesseract",
        description="Engine for pages without a usable text layer: tesseract, rapidocr, vllm.",
    )
    fallback: list[EngineName] = Field(
        default_factory=list,
        description="Engines tried in order when the default fails, e.g. [remote-openai].",
    )
    max_fallback_attempts: int = Field(
        default=2, ge=0, description="How many fallback engines a page may try."
    )
    health_cache_s: float = Field(
        default=10.0, gt=0, description="How long a GPU server health check is trusted."
    )
    vllm: OpenAiEngineSettings = OpenAiEngineSettings()
    remote_openai: OpenAiEngineSettings = Field(
        default_factory=lambda: OpenAiEngineSettings(model="gpt-4o-mini", preset="generic"),
        description="A hosted OpenAI-compatible endpoint, named `remote-openai` in the chain.",
    )


class WorkerSettings(BaseModel):
    """Celery worker behaviour."""

    concurrency: int | None = Field(default=None, ge=1, description="Worker processes. Default: CPU count.")
    pages_per_task: int = Field(default=64, ge=1, description="Text-layer pages handled by one task.")
    max_attempts: int = Field(default=3, ge=1, description="Attempts before a page or job is given up.")
    lease_s: int = Field(
        default=900,
        ge=2,
        description="An active job with no progress for this long is re-enqueued by the sweeper.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port a worker serves Prometheus metrics on (0: off)."
    )
    sweep_interval_s: int = Field(default=60, ge=1, description="How often a worker looks for stalled jobs.")
    task_soft_time_limit_s: int = Field(default=1500, ge=1, description="Soft time limit of one task.")
    task_time_limit_s: int = Field(default=1800, ge=1, description="Hard time limit of one task.")


class ApiSettings(BaseModel):
    """The HTTP gateway."""

    host: str = Field(default="127.0.0.1", description="Address `pagemill up`/`pagemill api` bind to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `pagemill up`/`pagemill api` bind to.")
    page_size_max: int = Field(default=100, ge=1, description="Largest page of a job listing.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API (CORS), e.g. ["https://app.example.com"].',
    )
    hsts_max_age_s: int = Field(
        default=31_536_000,
        ge=0,
        description="Strict-Transport-Security max-age sent on HTTPS requests (behind TLS); 0: no header.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto are trusted (uvicorn), e.g. '10.0.0.0/8' or '*'.",
    )


TierName = Literal["free", "standard", "enterprise"]
"""The tiers an API key's tenant (or an OIDC token) can be on."""


RateLimit = Annotated[
    str,
    Field(
        description="Requests per API key, in slowapi/limits notation ('60/minute', '10/second;1000/hour')."
    ),
]
DocumentQuota = Annotated[int | None, Field(ge=0, description="Documents per UTC period; None: unlimited.")]
FileBytes = Annotated[int, Field(ge=1, description="Largest upload.")]
PagesPerDocument = Annotated[int, Field(ge=1, description="Most pages per document.")]
Priority = Annotated[
    int, Field(ge=0, le=9, description="Queue priority of the tier's jobs, 0 (last) to 9 (first).")
]


class TierSettings(BaseModel):
    """What one tier may do. Each field's type carries its bounds, so the tiers below, which only change
    defaults, keep them."""

    rate_limit: RateLimit = "600/minute"
    documents_per_day: DocumentQuota = None
    documents_per_month: DocumentQuota = None
    max_file_bytes: FileBytes = 100 * 1024 * 1024
    max_pages: PagesPerDocument = 1000
    priority: Priority = 5

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)  # raises ValueError on bad notation
        return value


class FreeTier(TierSettings):
    """The free tier: a taste, not a workload."""

    rate_limit: RateLimit = "60/minute"
    documents_per_day: DocumentQuota = 100
    max_file_bytes: FileBytes = 10 * 1024 * 1024
    max_pages: PagesPerDocument = 20
    priority: Priority = 0


class StandardTier(TierSettings):
    """The paid tier."""

    documents_per_month: DocumentQuota = 10_000


class EnterpriseTier(TierSettings):
    """Unlimited documents, the largest files, first in the queue."""

    rate_limit: RateLimit = "6000/minute"
    max_file_bytes: FileBytes = 512 * 1024 * 1024
    max_pages: PagesPerDocument = 5000
    priority: Priority = 9


class TiersSettings(BaseModel):
    """The tiers (each a subclass, so overriding one field keeps the tier's other defaults)."""

    free: FreeTier = FreeTier()
    standard: StandardTier = StandardTier()
    enterprise: EnterpriseTier = EnterpriseTier()

    def get(self, name: str) -> TierSettings:
        """The settings of tier ``name``; KeyError if there is no such tier."""
        if name not in TIER_NAMES:
            raise KeyError(name)
        tier: TierSettings = getattr(self, name)
        return tier


TIER_NAMES: tuple[TierName, ...] = ("free", "standard", "enterprise")


class OidcSettings(BaseModel):
    """Bearer JWTs from an OpenID Connect issuer, mapped to a tenant and a tier (off unless issuer is set)."""

    issuer: str | None = Field(default=None, description="Issuer URL; tokens must carry it as `iss`.")
    audience: str | None = Field(default=None, description="Required `aud` of tokens (recommended).")
    jwks_url: str | None = Field(
        default=None, description="JWKS URL. Default: `jwks_uri` from the issuer's discovery document."
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="Accepted signature algorithms."
    )
    tenant_claim: str = Field(default="tenant", description="Claim naming the tenant.")
    tier_claim: str = Field(default="tier", description="Claim naming the tier (if absent: default_tier).")
    default_tier: TierName = Field(default="standard", description="Tier of tokens without a tier claim.")
    admin_scope: str = Field(
        default="pagemill:admin", description="A `scope`/`scp` value that grants the admin scope."
    )
    jwks_cache_s: int = Field(default=300, ge=1, description="How long fetched signing keys are kept.")
    leeway_s: int = Field(default=30, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    timeout_s: float = Field(default=5.0, gt=0, description="Timeout for fetching discovery and JWKS.")


class AuthSettings(BaseModel):
    """API keys, OIDC tokens and rate limits."""

    enabled: bool = Field(
        default=True,
        description="Require an API key or token. Setting false makes every caller the `default` tenant's "
        "admin on the enterprise tier: only for a trusted network.",
    )
    bootstrap_key: bool = Field(
        default=True,
        description="`pagemill up`: create and print an admin key for the `default` tenant if none exists.",
    )
    rate_limit_storage_url: str | None = Field(
        default=None,
        description="slowapi storage, e.g. redis://host:6379/1. Default: the broker's Redis, else memory "
        "(one process).",
    )
    last_used_resolution_s: int = Field(
        default=60, ge=0, description="A key's last-used time is written at most this often."
    )
    oidc: OidcSettings = OidcSettings()


class Settings(BaseSettings):
    """Every Pagemill setting. Load with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="PAGEMILL_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file=os.environ.get("PAGEMILL_CONFIG_FILE") or None,
    )

    data_dir: Path = Field(default=Path("pagemill-data"), description="Folder for all embedded-mode state.")
    log_level: str = Field(default="INFO", description="Log level.")
    log_json: bool = Field(default=False, description="Log as JSON lines instead of text.")
    database: DatabaseSettings = DatabaseSettings()
    broker: BrokerSettings = BrokerSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()
    ocr: OcrSettings = OcrSettings()
    engines: EngineSettings = EngineSettings()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    tiers: TiersSettings = TiersSettings()

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
        return data


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return Settings()
