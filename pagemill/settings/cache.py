"""Settings of the result cache (pagemill.jobs.cache)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CacheSettings(BaseModel):
    """Reusing the results of an identical earlier job instead of reading the pages again."""

    enabled: bool = Field(
        default=True,
        description="Reuse results: a document (same SHA-256) submitted again by the same tenant with the "
        "same result options, within ttl_s of an earlier job that succeeded, gets that job's "
        "results without page work (the job names it in `cached_from`). A submission can opt out with "
        "`cache=false`.",
    )
    ttl_s: int = Field(
        default=86_400,
        ge=1,
        description="How long after an earlier job finished its results may be reused (they are also never "
        "reused once expired or purged).",
    )
