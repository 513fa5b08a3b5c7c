"""Request and response bodies of the event stream endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from pagemill.events.stream_tokens import StreamToken


class StreamTokenIn(BaseModel):
    """What a stream token may open."""

    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(
        default=None,
        max_length=64,
        description="Only this job's streams (`/jobs/{job_id}/events` and `/jobs/{job_id}/ws`). Default: "
        "every event stream of the tenant, `/events` included.",
    )


class StreamTokenOut(BaseModel):
    """A short-lived token for `?token=` on the event streams (SSE and WebSocket)."""

    token: str = Field(description="Put it in the stream's URL: `?token=...`. Never send the API key there.")
    expires_at: datetime = Field(description="When the token stops opening streams (an open one stays open).")
    expires_in_s: int = Field(description="Seconds from now until `expires_at`.")
    job_id: str | None = Field(description="The one job the token is for, or null: the whole tenant.")

    @classmethod
    def of(cls, made: StreamToken, ttl_s: int) -> StreamTokenOut:
        """The response for a token just made."""
        return cls(token=made.token, expires_at=made.expires_at, expires_in_s=ttl_s, job_id=made.job_id)
