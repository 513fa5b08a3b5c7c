"""Settings of webhooks (pagemill.webhooks): delivery, retries, disabling and secret rotation."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# The Standard Webhooks / Svix schedule: the first attempt at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h
# and 10 h after each failure (about 28 h in all).
DEFAULT_RETRY_SCHEDULE_S = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class WebhookSettings(BaseModel):
    """Webhook endpoints and per-job callback URLs: signed (Standard Webhooks), retried, recorded."""

    timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="Longest wait for a receiver to connect and to answer one delivery attempt (then the "
        "attempt fails with a timeout and is retried).",
    )
    retry_schedule_s: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_S),
        min_length=1,
        max_length=50,
        description="When each attempt of a delivery is made: the first item is the wait before the first "
        "attempt, each next item the wait after a failed attempt. After the last, the delivery is `dead` "
        "(it can be replayed).",
    )
    retry_jitter: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Each retry wait is multiplied by a random factor in [1 - jitter, 1 + jitter], so that "
        "deliveries that failed together do not all come back at the same moment.",
    )
    retry_after_max_s: float = Field(
        default=3600.0,
        ge=0,
        description="A receiver answering 429 or 503 with Retry-After is not retried sooner than it asks, "
        "up to this many seconds.",
    )
    disable_after_s: float = Field(
        default=5 * 86_400,
        gt=0,
        description="An endpoint whose every attempt failed for this long (no success in between) is "
        "disabled, and a webhook.disabled event recorded.",
    )
    rotation_grace_s: float = Field(
        default=86_400,
        ge=0,
        description="After a secret rotation the old secret keeps signing beside the new one for this long "
        "(two signatures in webhook-signature), so receivers can switch without losing a delivery.",
    )
    routing_cache_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a process remembers which event types a tenant's endpoints subscribe to (page "
        "work asks for every page). A new or changed endpoint is seen by other processes after this long; "
        "0: ask the database every time.",
    )
    redeliver_after_s: float = Field(
        default=60.0,
        ge=1,
        description="A delivery still due this long after its message should have run (the message was lost, "
        "or the worker delivering it was killed) is sent again by the sweeper.",
    )
    max_endpoints: int = Field(
        default=20, ge=1, le=1000, description="Webhook endpoints one tenant may register."
    )
    worker_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Delivery threads of the webhooks worker `pagemill up` starts (a `pagemill worker "
        "--queues webhooks` runs in threads too; its --concurrency overrides this).",
    )

    @field_validator("retry_schedule_s")
    @classmethod
    def _no_negative_wait(cls, value: list[float]) -> list[float]:
        if any(wait < 0 for wait in value):
            raise ValueError("waits of the retry schedule cannot be negative")
        return value
