"""Settings of resumable (tus) uploads."""

from __future__ import annotations

from pydantic import BaseModel, Field

MIB = 1024 * 1024
# S3's multipart rules: every part but the last at least 5 MiB, at most 5 GiB.
S3_MIN_PART_BYTES = 5 * MIB
S3_MAX_PART_BYTES = 5 * 1024 * MIB


class UploadSettings(BaseModel):
    """tus 1.0 uploads at /api/v1/uploads (pagemill.uploads)."""

    expire_after_s: int = Field(
        default=24 * 3600,
        ge=60,
        description="An upload not finished this many seconds after its creation expires (410, then 404); "
        "the sweeper deletes its bytes and aborts its S3 multipart upload. Also how long a finished "
        "upload's id can be given to POST /api/v1/documents.",
    )
    s3_part_bytes: int = Field(
        default=8 * MIB,
        ge=S3_MIN_PART_BYTES,
        le=S3_MAX_PART_BYTES,
        description="S3 backend: on an HTTPS endpoint a PATCH that declares its length, is at least 5 MiB "
        "(or the upload's last bytes) and at most 4 x this is streamed to S3 as one part while it arrives "
        "(its CRC32 sent after it); other bytes are sent "
        "as a part each time this many have gathered, a PATCH ending with at least 5 MiB unsent sends them "
        "as a smaller part, and less waits in a pending-part object for the next PATCH.",
    )
    lock_lease_s: int = Field(
        default=120,
        ge=10,
        description="How long a PATCH holds its upload's lock without renewing it (it renews it while "
        "bytes arrive): a replica that died mid-PATCH blocks the upload at most this long (423 + "
        "Retry-After meanwhile). Keep above api.body_read_timeout_s.",
    )
    spool_dir: str | None = Field(
        default=None,
        description="S3 backend: folder for the temporary file of each PATCH in flight (at most "
        "4 x s3_part_bytes: a part being gathered, or a streamed PATCH kept in case it is cut off). "
        "Default: the system temp folder.",
    )
