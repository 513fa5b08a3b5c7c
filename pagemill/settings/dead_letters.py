"""Settings of dead letters and their replay (pagemill.dead_letters)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class DeadLetterSettings(BaseModel):
    """Work that spent its attempts, recorded for operators, and replaying it."""

    bulk_replay_max: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most dead letters one bulk replay (by category) takes; the answer says how many match "
        "beyond them (replay again for those).",
    )
    bulk_replay_rate_limit: str = Field(
        default="6/minute",
        description="Bulk replays per API key (on top of the tier's request rate), in slowapi/limits "
        "notation ('6/minute', '1/second;20/hour').",
    )
    traceback_max_chars: int = Field(
        default=8000,
        ge=0,
        description="The end of a failure's traceback kept on its dead letter for operators (0: none).",
    )

    @field_validator("bulk_replay_rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit in limits notation: {value!r}") from exc
        return value
