"""Settings of the services Pagemill talks to: the database, the broker and the blob store."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class DatabaseSettings(BaseModel):
    """The job database: the source of truth."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db. Default: SQLite in data dir.",
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept open per process (Postgres).")
    pool_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for a free pooled connection; then 503 SERVICE_UNAVAILABLE + Retry-After.",
    )
    sqlite_busy_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="SQLite: longest wait for the write lock (one writer at a time: threads of a process "
        "queue in-process, processes in SQLite's busy handler); then 503 in the API, a retry in a worker.",
    )
    connect_timeout_s: int = Field(default=5, ge=1, description="Timeout for opening a connection.")
    statement_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="Postgres: a statement running longer is cancelled (503 in the API, a retry in a "
        "worker), so a stuck query cannot hold its connection and locks for ever. 0: no limit (behind "
        "PgBouncer in transaction mode, which refuses the startup option). Migrations run without it.",
    )
    idle_in_transaction_timeout_s: float = Field(
        default=120.0,
        ge=0,
        description="Postgres: a connection left idle inside a transaction this long (a process hung "
        "mid-transaction) is closed by the server, releasing its locks. 0: no limit.",
    )


class BrokerSettings(BaseModel):
    """The Celery broker that carries job and page ids to the workers."""

    url: str | None = Field(
        default=None,
        description="Celery broker URL, e.g. redis://host:6379/0. Default: an SQLite broker in the data dir.",
    )
    visibility_timeout_s: int = Field(
        default=300,
        ge=60,
        description="Redis: seconds before a task taken by a worker that vanished is delivered again. A "
        "task still running then is delivered twice, which is harmless: page tasks claim their pages in "
        "the database (a duplicate finds them taken), and planning a job is fenced on its state.",
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
    s3_checksums: bool = Field(
        default=True,
        description="Send a CRC32 with every object and upload part stored in S3, which the server checks "
        "(tus uploads too: their multipart uploads are created with it). Turn off only for an S3-compatible "
        "server that refuses checksum headers: objects are then stored without, and tus parts stream as they "
        "arrive on plain HTTP too.",
    )
    result_url_ttl_s: int = Field(
        default=300,
        ge=1,
        le=604_800,
        description="How long a result download URL (`GET /api/v1/jobs/{id}/result?redirect=true`) stays "
        "valid: a presigned S3 URL, or a signed API URL on the local backend.",
    )
