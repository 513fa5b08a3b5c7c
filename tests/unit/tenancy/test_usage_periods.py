"""Quota periods (UTC day and month, their ledger keys and ends) and the tier settings behind the quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pagemill.settings import (
    TIER_NAMES,
    EnterpriseTier,
    FreeTier,
    Settings,
    StandardTier,
    TierSettings,
    TiersSettings,
)
from pagemill.tenancy.usage import DAY, MONTH, Period, periods

pytestmark = pytest.mark.usefixtures("clean_env")


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --- periods ------------------------------------------------------------------------------------------------


def test_an_ordinary_moment_gives_its_utc_day_and_month() -> None:
    day, month = periods(_utc(2026, 11, 22, 8, 30, 15))
    assert (day.kind, day.key, day.start, day.end) == (
        DAY,
        "2026-11-22",
        _utc(2026, 11, 22),
        _utc(2026, 11, 23),
    )
    assert (month.kind, month.key, month.start, month.end) == (
        MONTH,
        "2026-11",
        _utc(2026, 11, 1),
        _utc(2026, 12, 1),
    )


@pytest.mark.parametrize(
    ("now", "day_key", "day_end", "month_key", "month_end"),
    [
        # The last microsecond of a 30-day month.
        (
            _utc(2026, 11, 30, 23, 59, 59, 999999),
            "2026-11-30",
            _utc(2026, 12, 1),
            "2026-11",
            _utc(2026, 12, 1),
        ),
        # The first instant of the next month belongs to it.
        (_utc(2026, 12, 1), "2026-12-01", _utc(2026, 12, 2), "2026-12", _utc(2027, 1, 1)),
        # Year end: December rolls over to January of the next year.
        (_utc(2026, 12, 31, 23, 59, 59), "2026-12-31", _utc(2027, 1, 1), "2026-12", _utc(2027, 1, 1)),
        (_utc(2027, 1, 1, 0, 0, 0), "2027-01-01", _utc(2027, 1, 2), "2027-01", _utc(2027, 2, 1)),
        # February, in a common and in a leap year.
        (_utc(2027, 2, 28, 12), "2027-02-28", _utc(2027, 3, 1), "2027-02", _utc(2027, 3, 1)),
        (_utc(2028, 2, 28, 12), "2028-02-28", _utc(2028, 2, 29), "2028-02", _utc(2028, 3, 1)),
        (_utc(2028, 2, 29, 23), "2028-02-29", _utc(2028, 3, 1), "2028-02", _utc(2028, 3, 1)),
        # A 31-day month and a single-digit month (keys are zero-padded).
        (_utc(2026, 1, 31, 6), "2026-01-31", _utc(2026, 2, 1), "2026-01", _utc(2026, 2, 1)),
        (_utc(2026, 9, 5), "2026-09-05", _utc(2026, 9, 6), "2026-09", _utc(2026, 10, 1)),
    ],
)
def test_periods_at_month_and_year_ends(
    now: datetime, day_key: str, day_end: datetime, month_key: str, month_end: datetime
) -> None:
    day, month = periods(now)
    assert day.key == day_key and day.end == day_end
    assert month.key == month_key and month.end == month_end
    assert day.start <= now < day.end and month.start <= now < month.end
    assert day.end - day.start == timedelta(days=1)
    assert month.start <= day.start and day.end <= month.end


@pytest.mark.parametrize(
    ("now", "day_key", "month_key"),
    [
        # 01:30 in UTC+05:00 is 20:30 the day before in UTC.
        (datetime(2026, 11, 22, 1, 30, tzinfo=timezone(timedelta(hours=5))), "2026-11-21", "2026-11"),
        # 20:00 on Nov 30 in UTC-08:00 is already December in UTC.
        (datetime(2026, 11, 30, 20, 0, tzinfo=timezone(timedelta(hours=-8))), "2026-12-01", "2026-12"),
        # New Year's Eve evening in New York's winter offset is the new year in UTC.
        (datetime(2026, 12, 31, 19, 30, tzinfo=timezone(timedelta(hours=-5))), "2027-01-01", "2027-01"),
        # New Year's morning in Tokyo is still the old year in UTC.
        (datetime(2027, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=9))), "2026-12-31", "2026-12"),
        # Half-hour offsets too.
        (
            datetime(2026, 11, 22, 5, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2026-11-21",
            "2026-11",
        ),
    ],
)
def test_non_utc_input_is_converted_to_utc_first(now: datetime, day_key: str, month_key: str) -> None:
    day, month = periods(now)
    assert (day.key, month.key) == (day_key, month_key)
    for period in (day, month):
        assert period.start.utcoffset() == timedelta(0) and period.end.utcoffset() == timedelta(0)
        assert period.start <= now < period.end


def test_period_keys_are_the_ledger_formats() -> None:
    day, month = periods(_utc(2026, 11, 22, 23, 0))
    assert (day.key, month.key) == ("2026-11-22", "2026-11")
    # The ledger's period_start column holds at most 10 characters.
    assert len(day.key) == 10 and len(month.key) == 7
    assert Period(DAY, _utc(2026, 3, 4), _utc(2026, 3, 5)).key == "2026-03-04"
    assert Period(MONTH, _utc(2026, 3, 1), _utc(2026, 4, 1)).key == "2026-03"


def test_every_hour_of_a_year_maps_to_its_own_day_and_month() -> None:
    moment = _utc(2026, 1, 1)
    while moment < _utc(2027, 1, 2):
        day, month = periods(moment)
        midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        assert (day.start, day.end) == (midnight, midnight + timedelta(days=1))
        assert month.start == midnight.replace(day=1)
        assert month.end == (month.start + timedelta(days=32)).replace(day=1)
        assert month.key == day.key[:7] == moment.strftime("%Y-%m")
        moment += timedelta(hours=7)


# --- tier settings ------------------------------------------------------------------------------------------


def test_tier_defaults() -> None:
    tiers = Settings().tiers
    assert TIER_NAMES == ("free", "standard", "enterprise")
    free, standard, enterprise = (tiers.get(name) for name in TIER_NAMES)
    assert (free.rate_limit, free.documents_per_day, free.documents_per_month) == ("60/minute", 100, None)
    assert (free.max_file_bytes, free.max_pages, free.priority) == (10 * 1024 * 1024, 20, 0)
    assert (standard.documents_per_day, standard.documents_per_month) == (None, 10_000)
    assert (enterprise.documents_per_day, enterprise.documents_per_month) == (None, None)
    assert (enterprise.rate_limit, enterprise.max_pages, enterprise.priority) == ("6000/minute", 5000, 9)


def test_an_unknown_tier_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        TiersSettings().get("platinum")
    with pytest.raises(KeyError):
        TiersSettings().get("get")


def test_an_env_override_keeps_the_tiers_own_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_TIERS__FREE__DOCUMENTS_PER_DAY", "3")
    tiers = Settings().tiers
    assert isinstance(tiers.free, FreeTier)
    assert tiers.free.documents_per_day == 3
    # Everything else is still the free tier's, not the base TierSettings defaults.
    assert tiers.free.max_pages == 20
    assert tiers.free.rate_limit == "60/minute"
    assert tiers.free.max_file_bytes == 10 * 1024 * 1024
    assert tiers.free.priority == 0
    # The other tiers are untouched.
    assert tiers.standard == StandardTier() and tiers.enterprise == EnterpriseTier()


def test_overrides_of_several_tiers_and_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_TIERS__STANDARD__DOCUMENTS_PER_DAY", "500")
    monkeypatch.setenv("PAGEMILL_TIERS__ENTERPRISE__RATE_LIMIT", "100/second;100000/hour")
    monkeypatch.setenv("PAGEMILL_TIERS__ENTERPRISE__PRIORITY", "8")
    tiers = Settings().tiers
    assert (tiers.standard.documents_per_day, tiers.standard.documents_per_month) == (500, 10_000)
    assert tiers.enterprise.rate_limit == "100/second;100000/hour"
    assert (tiers.enterprise.priority, tiers.enterprise.max_pages) == (8, 5000)
    assert tiers.free == FreeTier()


def test_a_partial_tier_table_keeps_the_tiers_own_defaults() -> None:
    # A nested table (as a TOML file's [tiers.free] gives) names only the fields it changes.
    settings = Settings(tiers={"free": {"max_pages": 50}})  # type: ignore[arg-type]
    assert settings.tiers.free.max_pages == 50
    assert settings.tiers.free.documents_per_day == 100
    assert settings.tiers.free.rate_limit == "60/minute"


@pytest.mark.parametrize(
    "notation", ["60/minute", "10/second;1000/hour", "5 per second", "1000/day", "100/2 minutes"]
)
def test_valid_rate_limit_notations_are_accepted(notation: str) -> None:
    assert TierSettings(rate_limit=notation).rate_limit == notation


@pytest.mark.parametrize(
    "notation", ["lots", "60", "60/fortnight", "minute/60", "-1/minute", "60/minute;nope"]
)
def test_invalid_rate_limit_notation_is_refused(notation: str) -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        TierSettings(rate_limit=notation)
    with pytest.raises(ValidationError):
        FreeTier(rate_limit=notation)


def test_invalid_rate_limit_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGEMILL_TIERS__FREE__RATE_LIMIT", "sixty a minute")
    with pytest.raises(ValidationError, match="rate_limit"):
        Settings()


INVALID_TIER_VALUES = [
    ("documents_per_day", "-1"),
    ("documents_per_month", "-1"),
    ("max_file_bytes", "0"),
    ("max_pages", "0"),
    ("priority", "10"),
    ("priority", "-1"),
    ("documents_per_month", "many"),
]


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_out_of_range_tier_values_from_the_environment_are_refused_on_every_tier(
    monkeypatch: pytest.MonkeyPatch, tier: str
) -> None:
    # Each tier is a subclass that changes some defaults: the base class's bounds must still hold for it.
    accepted = []
    for field, value in INVALID_TIER_VALUES:
        variable = f"PAGEMILL_TIERS__{tier.upper()}__{field.upper()}"
        with monkeypatch.context() as mp:
            mp.setenv(variable, value)
            try:
                Settings()
            except ValidationError as exc:
                assert field in str(exc)
            else:
                accepted.append(f"{variable}={value}")
    assert accepted == [], f"accepted out-of-range values: {accepted}"


@pytest.mark.parametrize("tier_class", [FreeTier, StandardTier, EnterpriseTier])
def test_every_tier_keeps_the_bounds_and_descriptions_of_the_base_fields(
    tier_class: type[TierSettings],
) -> None:
    for name, base in TierSettings.model_fields.items():
        field = tier_class.model_fields[name]
        assert field.metadata == base.metadata, f"{tier_class.__name__}.{name} lost its bounds"
        assert field.description == base.description, f"{tier_class.__name__}.{name} lost its description"
