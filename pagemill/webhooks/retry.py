"""When a failed delivery is tried again: the retry schedule with jitter, and the receiver's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime

# Answers whose Retry-After is honoured (RFC 9110: "Too Many Requests" and "Service Unavailable").
RETRY_AFTER_STATUSES = frozenset({429, 503})


def next_wait(
    failed_attempts: int,
    schedule: Sequence[float],
    *,
    jitter: float,
    retry_after_s: float | None = None,
    retry_after_max_s: float,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt after ``failed_attempts`` failed ones in a row (1 after the
    first), or None when the schedule is used up (the delivery is dead).

    ``schedule[0]`` is the wait before the first attempt, ``schedule[n]`` the wait after the n-th failure,
    multiplied by a random factor in ``[1 - jitter, 1 + jitter]``. A receiver's Retry-After (capped at
    ``retry_after_max_s``) is a lower bound: never sooner than it asked, never sooner than the schedule.
    """
    if failed_attempts < 1 or failed_attempts >= len(schedule):
        return None
    base = schedule[failed_attempts]
    wait = base * (1 + (rng or random).uniform(-jitter, jitter)) if jitter else base
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, retry_after_max_s))
    return max(0.0, wait)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delay-seconds or an HTTP date), or None if it is
    missing or unreadable. A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an obsolete date form without a zone: HTTP dates are GMT
        return None
    return max(0.0, (when - now).total_seconds())
