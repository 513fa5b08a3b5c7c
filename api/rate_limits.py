"""Request rate limits per API key with slowapi, the limit resolved per request from the caller's tier.

Counters live in Redis when the broker is Redis (shared by every API replica), else in process memory
(embedded mode runs one API process). The moving-window strategy counts exactly: no burst of twice the
limit across a window boundary. Fail mode, chosen on purpose: if Redis is unreachable each replica falls
back to its own in-memory counters (limits still apply, per replica) and goes back to Redis when it
answers again; refusing every request because the limiter's store is down would turn a Redis blip into an
outage of reads that need no broker at all.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from limits import parse, parse_many
from slowapi import Limiter
from starlette.requests import Request
from starlette.responses import Response

from pagemill.settings import get_settings
from pagemill.tenancy.principal import Principal

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

_SCOPE = "api"


def _rate_key(request: Request) -> str:
    return _key_of(request.state.principal)


def _key_of(principal: Principal) -> str:
    # The tier rides in the key so the limit provider (which only sees the key) can resolve its limit.
    return f"{principal.tier}:{principal.rate_key}"


def _tier_limit(key: str) -> str:
    return get_settings().tiers.get(key.split(":", 1)[0]).rate_limit


class TierLimiter(Limiter):
    """slowapi's Limiter with two header fixes: no Retry-After on every response (on a 202 it reads as
    'poll in N s'), and X-RateLimit-Reset as whole Unix seconds (as GitHub and most clients expect)."""

    def _inject_headers(self, response: Response, current_limit: Any) -> Response:
        response = super()._inject_headers(response, current_limit)
        if response.status_code != 429 and "retry-after" in response.headers:
            del response.headers["retry-after"]
        reset = response.headers.get("x-ratelimit-reset")
        if reset is not None:
            response.headers["x-ratelimit-reset"] = str(math.ceil(float(reset)))
        return response


limiter = TierLimiter(
    key_func=_rate_key,
    storage_uri=get_settings().rate_limit_storage_url,
    strategy="moving-window",
    headers_enabled=True,
    in_memory_fallback_enabled=True,
    # Only reached if a header lookup fails between the check and the response: never turn that into a 500.
    swallow_errors=True,
    key_prefix="pagemill-rl",
)


def rate_limited(func: F) -> F:
    """Count a request against its key's tier limit (one budget across every route); 429 when over.

    The route must take ``request: Request`` and, unless it returns a Response, ``response: Response``.
    """
    decorated: F = limiter.shared_limit(_tier_limit, scope=_SCOPE)(func)
    return decorated


def also_limited(limit: Callable[[], str]) -> Callable[[F], F]:
    """A further limit of one route per API key, on top of the tier's (put it below ``@rate_limited``):
    ``limit()`` gives it in limits notation, read per request (from the settings). Over it: 429 as any."""

    def decorate(func: F) -> F:
        decorated: F = limiter.limit(limit)(func)
        return decorated

    return decorate


def count_request(principal: Principal) -> int | None:
    """Count one request of ``principal`` for an entrypoint the decorator cannot wrap (a WebSocket
    handshake): None when it is within the tier's limit, else the seconds until there is room. Blocking
    (Redis in distributed mode); a store that does not answer lets the request through, as the decorator's
    in-memory fallback would."""
    key = _key_of(principal)
    identifiers = [limiter._key_prefix, key, _SCOPE]
    try:
        for item in parse_many(_tier_limit(key)):
            if not limiter.limiter.hit(item, *identifiers):
                reset_at, _remaining = limiter.limiter.get_window_stats(item, *identifiers)
                return max(1, math.ceil(reset_at - time.time()))
    except Exception:
        log.warning("rate limit not counted: the limiter's store did not answer", exc_info=True)
    return None


def seconds_until_allowed(principal: Principal) -> int | None:
    """If the caller's budget is spent already, the seconds until it has room again; else None.

    Lets the API answer 429 before it reads a request body that the route's own check would refuse after
    the whole upload. Only looks (no hit): the request is counted by the route, as any other. Blocking
    (Redis in distributed mode): call from a worker thread.
    """
    key = _key_of(principal)
    item = parse(_tier_limit(key))
    # slowapi's layout of a shared limit's counter: prefix, key, scope.
    identifiers = [limiter._key_prefix, key, _SCOPE]
    try:
        if limiter.limiter.test(item, *identifiers):
            return None
        reset_at, _remaining = limiter.limiter.get_window_stats(item, *identifiers)
    except Exception:
        # The store is unreachable: the route's check (with its in-memory fallback) decides.
        log.warning("rate limit pre-check skipped: the limiter's store did not answer", exc_info=True)
        return None
    return max(1, math.ceil(reset_at - time.time()))
