"""Stream tokens: short-lived credentials for event streams, for browsers.

An ``EventSource`` cannot send an Authorization header and a browser ``WebSocket`` cannot either, while an
API key in a URL ends up in proxy and server logs. So a client with a key asks ``POST
/api/v1/stream-tokens`` for a token and puts that in the stream's URL (``?token=``).

A token is a JWT (HS256, PyJWT) signed with a key derived from ``secrets.key`` (embedded mode: its key
file), so every API replica with the same secrets key accepts it and nothing is stored. It names the tenant,
the tier and rate-limit key of the caller that asked for it, and optionally one job; it lives
``events.stream_token_ttl_s`` seconds and is only accepted by the event streams. Being stateless, a token
is not revoked with its API key: it stays good for what is left of its short life (5 minutes by default).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from pagemill.errors import Forbidden, Unauthorized
from pagemill.secret_box import derived_key
from pagemill.settings import Settings
from pagemill.tenancy.keys import KEY_PREFIX
from pagemill.tenancy.principal import Principal

ISSUER = "pagemill"
AUDIENCE = "pagemill:streams"
_ALGORITHM = "HS256"
_CONTEXT = b"pagemill stream tokens v1"
_MISSING = (
    "Stream tokens are signed with secrets.key (PAGEMILL_SECRETS__KEY), which this server has not set; "
    "send the API key in the Authorization header instead."
)
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "tenant", "tier", "rk"]


@dataclass(frozen=True)
class StreamToken:
    """A token made for a caller."""

    token: str
    expires_at: datetime
    job_id: str | None


def issue(
    settings: Settings, principal: Principal, job_id: str | None = None, *, now: float | None = None
) -> StreamToken:
    """A token that opens the event streams of ``principal``'s tenant (only ``job_id``'s, if given) for
    ``events.stream_token_ttl_s`` seconds."""
    issued = int(now if now is not None else time.time())
    expires = issued + settings.events.stream_token_ttl_s
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.subject,
        "tenant": principal.tenant_id,
        "tier": principal.tier,
        "rk": principal.rate_key,
        "iat": issued,
        "exp": expires,
        "jti": secrets.token_urlsafe(12),
    }
    if job_id is not None:
        claims["job"] = job_id
    token = jwt.encode(claims, _key(settings), algorithm=_ALGORITHM)
    return StreamToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC), job_id=job_id)


def authorize(settings: Settings, token: str, job_id: str | None, *, now: float | None = None) -> Principal:
    """The principal a stream token stands for, if it opens the stream of ``job_id`` (None: the tenant's
    stream). Unauthorized for an API key in its place, a forged, altered or expired token; Forbidden for a
    token of one job used on another job's or the tenant's stream."""
    if token.startswith(KEY_PREFIX):
        raise Unauthorized(
            "API keys are never accepted in a URL (they end up in logs): send the key in the Authorization "
            "header, or get a stream token from POST /api/v1/stream-tokens.",
            reason="key_in_query",
        )
    try:
        claims = jwt.decode(
            token,
            _key(settings),
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            # PyJWT checks the expiry against the clock; with ``now`` given (tests), against that instead.
            options={"require": _REQUIRED, "verify_exp": now is None},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "The stream token has expired; get a new one from POST /api/v1/stream-tokens.", reason="expired"
        ) from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The stream token is not valid.", reason="invalid_stream_token") from None
    if now is not None and now >= int(claims["exp"]):
        raise Unauthorized(
            "The stream token has expired; get a new one from POST /api/v1/stream-tokens.", reason="expired"
        )
    scoped = claims.get("job")
    if scoped is not None and scoped != _canonical(job_id):
        raise Forbidden("This stream token opens the events of one job only.", job_id=scoped)
    return Principal(
        tenant_id=str(claims["tenant"]),
        tier=str(claims["tier"]),
        subject=str(claims["sub"]),
        rate_key=str(claims["rk"]),
    )


def _canonical(job_id: str | None) -> str | None:
    if job_id is None:
        return None
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        return None


def _key(settings: Settings) -> bytes:
    return derived_key(settings, _CONTEXT, missing=_MISSING)
