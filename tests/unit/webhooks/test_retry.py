"""The retry schedule with jitter, and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pagemill.settings.webhooks import DEFAULT_RETRY_SCHEDULE_S, WebhookSettings
from pagemill.webhooks.retry import next_wait, parse_retry_after

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def test_the_default_schedule_is_the_standard_webhooks_one() -> None:
    assert WebhookSettings().retry_schedule_s == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert DEFAULT_RETRY_SCHEDULE_S[0] == 0  # the first attempt at once


def test_each_failure_takes_the_next_wait_until_the_schedule_is_used_up() -> None:
    schedule = [0.0, 5.0, 300.0, 1800.0]
    waits = [next_wait(n, schedule, jitter=0, retry_after_max_s=3600) for n in range(1, 6)]
    assert waits == [5.0, 300.0, 1800.0, None, None]
    assert next_wait(0, schedule, jitter=0, retry_after_max_s=3600) is None


def test_jitter_stays_within_its_band_and_varies() -> None:
    rng = random.Random(7)
    waits = [next_wait(2, [0, 5, 100], jitter=0.1, retry_after_max_s=0, rng=rng) for _ in range(200)]
    assert all(w is not None and 90 <= w <= 110 for w in waits)
    assert len({round(w or 0, 3) for w in waits}) > 50


def test_retry_after_is_a_lower_bound_capped_by_the_setting() -> None:
    schedule = [0.0, 5.0, 300.0]
    # Asked for longer than the schedule: honoured.
    assert next_wait(1, schedule, jitter=0, retry_after_s=60, retry_after_max_s=3600) == 60
    # Asked for less: the schedule still applies (no tight loop on a receiver saying "1 s").
    assert next_wait(1, schedule, jitter=0, retry_after_s=1, retry_after_max_s=3600) == 5
    # Asked for a day: capped.
    assert next_wait(1, schedule, jitter=0, retry_after_s=86400, retry_after_max_s=600) == 600
    # Never extends a used-up schedule.
    assert next_wait(3, schedule, jitter=0, retry_after_s=10, retry_after_max_s=600) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, NOW) == 90.0
    earlier = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(earlier, NOW) == 0.0


def test_a_negative_wait_in_the_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        WebhookSettings(retry_schedule_s=[0, -1])
