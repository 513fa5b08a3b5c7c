"""Settings of the API's door: HTTP, tiers, authentication and secrets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


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
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        description="Requests one API process works on at once (its thread pool and database pool are sized "
        "to match); more are answered 503 SERVICE_UNAVAILABLE + Retry-After before their body is read.",
    )
    body_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for the next piece of a request body; a stalled upload is answered 408 "
        "REQUEST_TIMEOUT and its connection closed.",
    )
    keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="How long an idle keep-alive connection stays open. Longer than clients keep theirs "
        "(httpx: 5 s) and than proxies' idle timeouts (60 s is common), so the client side closes first: "
        "a server closing at the same moment a client sends on the connection fails that request.",
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
AudioSeconds = Annotated[int, Field(ge=1, description="Longest recording per job, in seconds.")]
AudioMinutes = Annotated[
    int | None, Field(ge=0, description="Minutes of recordings per UTC period; None: unlimited.")
]
BatchItems = Annotated[int, Field(ge=1, description="Most documents in one batch (POST /api/v1/batches).")]
RetentionSeconds = Annotated[
    int | None,
    Field(
        ge=1,
        description="Seconds after a job ends that its blobs are kept (the sweeper deletes them then); "
        "None: kept until purged.",
    ),
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
    max_batch_items: BatchItems = 100
    max_audio_seconds: AudioSeconds = 2 * 3600
    audio_minutes_per_day: AudioMinutes = None
    audio_minutes_per_month: AudioMinutes = None
    # Originals are only needed to read the pages again; results are what the client came for.
    originals_retention_s: RetentionSeconds = 7 * 86_400
    results_retention_s: RetentionSeconds = 30 * 86_400

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
    max_batch_items: BatchItems = 10
    max_audio_seconds: AudioSeconds = 600
    audio_minutes_per_day: AudioMinutes = 60
    originals_retention_s: RetentionSeconds = 86_400
    results_retention_s: RetentionSeconds = 7 * 86_400


class StandardTier(TierSettings):
    """The paid tier."""

    documents_per_month: DocumentQuota = 10_000
    audio_minutes_per_month: AudioMinutes = 6_000


class EnterpriseTier(TierSettings):
    """Unlimited documents, the largest files, first in the queue."""

    rate_limit: RateLimit = "6000/minute"
    max_file_bytes: FileBytes = 512 * 1024 * 1024
    max_pages: PagesPerDocument = 5000
    max_audio_seconds: AudioSeconds = 4 * 3600
    priority: Priority = 9
    max_batch_items: BatchItems = 1000


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


class SecretsSettings(BaseModel):
    """The key that seals secrets kept while a job runs (the password of an encrypted PDF)."""

    key: SecretStr | None = Field(
        default=None,
        description="Fernet key (32 url-safe base64 bytes, e.g. from cryptography's Fernet.generate_key()), "
        "the same on the API and every worker. Default: embedded mode makes one in DATA_DIR/secret.key "
        "(mode 0600); otherwise it is required to accept document passwords.",
    )
    previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys replaced by `key` that may still have sealed the passwords of running jobs: they "
        "still open them (rotate by moving the old key here).",
    )

    @field_validator("key", "previous_keys")
    @classmethod
    def _check_fernet_keys(
        cls, value: SecretStr | list[SecretStr] | None
    ) -> SecretStr | list[SecretStr] | None:
        from cryptography.fernet import Fernet

        for item in value if isinstance(value, list) else [value] if value is not None else []:
            try:
                Fernet(item.get_secret_value())
            except ValueError:
                raise ValueError("not a Fernet key: 32 url-safe base64-encoded bytes") from None
        return value
