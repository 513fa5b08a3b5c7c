"""What the upload service answers: an upload's state, a PATCH's outcome, and the caller's size cap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pagemill.errors import PagemillError
from pagemill.models import Job, Upload
from pagemill.settings import Settings
from pagemill.tenancy.principal import Principal

CHECKSUM_ALGORITHMS = ("sha1", "sha256")


def upload_cap(settings: Settings, principal: Principal | None) -> int:
    """The largest upload the caller may make: the server's cap, narrowed by the caller's tier."""
    if principal is None:
        return settings.limits.max_upload_bytes
    return min(settings.limits.max_upload_bytes, settings.tiers.get(principal.tier).max_file_bytes)


@dataclass(frozen=True)
class UploadInfo:
    """What HEAD and the PATCH/POST responses tell about an upload."""

    id: str
    offset: int
    length: int | None
    expires_at: datetime
    state: str
    job_id: str
    # Upload-Metadata as created, less the password (tus: HEAD echoes it).
    metadata: str | None = None

    @classmethod
    def of(cls, upload: Upload) -> UploadInfo:
        """A snapshot of an upload row."""
        return cls(
            id=upload.id,
            offset=upload.upload_offset,
            length=upload.length,
            expires_at=upload.expires_at,
            state=upload.state,
            job_id=upload.job_id,
            metadata=upload.meta.get("header"),
        )


@dataclass(frozen=True)
class PatchResult:
    """After a PATCH: the upload, and when it was the last one, its job or why it is not one (yet)."""

    upload: UploadInfo
    job: Job | None = None
    job_error: PagemillError | None = None
    replayed: bool = False
