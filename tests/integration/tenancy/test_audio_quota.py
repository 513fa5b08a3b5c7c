"""Minutes of recordings per day and month, counted in the usage ledger when a recording is cut (real
database): seconds add up, a recording over what is left fails whole, and nothing is taken for it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pagemill.errors import AudioTooLong
from pagemill.settings import TierSettings
from pagemill.tenancy import usage
from tests.integration.tenancy.test_service import NOW, in_session, make_tenant, tenant, used

__all__ = ["tenant"]  # the fixture, imported for this module's tests


def take(tenant_id: str, tier: TierSettings, seconds: int, now: object = NOW) -> None:
    in_session(lambda s: usage.take_audio_seconds(s, tenant_id, "free", tier, now, seconds))


def test_seconds_add_up_per_day_and_month(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(audio_minutes_per_day=2, audio_minutes_per_month=3)
    take(tenant, tier, 70)
    take(tenant, tier, 50)  # exactly the day's 120 s
    assert used(tenant, usage.AUDIO_DAY, "2026-11-30") == 120
    assert used(tenant, usage.AUDIO_MONTH, "2026-11") == 120
    with pytest.raises(AudioTooLong) as info:
        take(tenant, tier, 1)
    assert info.value.details["period"] == "day" and info.value.details["remaining_seconds"] == 0
    take(tenant, tier, 60, NOW - timedelta(days=1))  # yesterday: the month's 180 s are full now
    with pytest.raises(AudioTooLong) as info:
        take(tenant, tier, 1, NOW - timedelta(days=2))
    assert info.value.details["period"] == "month"


def test_a_recording_over_what_is_left_takes_nothing(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(audio_minutes_per_day=10, audio_minutes_per_month=1)
    with pytest.raises(AudioTooLong):
        take(tenant, tier, 61)  # the day would take it, the month not: the day's count is given back
    assert used(tenant, usage.AUDIO_DAY, "2026-11-30") == 0
    take(tenant, tier, 60)
    # Documents and recordings are counted apart.
    assert used(tenant, usage.DAY, "2026-11-30") == 0


def test_unlimited_tiers_still_count(tenant: str) -> None:
    make_tenant(tenant)
    take(tenant, TierSettings(), 3600)
    assert used(tenant, usage.AUDIO_MONTH, "2026-11") == 3600


def test_a_check_counts_nothing_and_refuses_what_would_pass_the_limit(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(audio_minutes_per_day=2, audio_minutes_per_month=None)
    take(tenant, tier, 100)

    def check(seconds: int) -> None:
        in_session(lambda s: usage.check_audio_seconds(s, tenant, "free", tier, NOW, seconds))

    check(20)  # exactly what is left
    check(20)  # a check takes nothing: the same again still fits
    assert used(tenant, usage.AUDIO_DAY, "2026-11-30") == 100
    with pytest.raises(AudioTooLong) as info:
        check(21)
    assert info.value.message.startswith("The recording is at least 21 seconds long")
    assert info.value.details["remaining_seconds"] == 20 and info.value.details["period"] == "day"
