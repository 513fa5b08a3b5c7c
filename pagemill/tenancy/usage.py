"""Document quotas per UTC day and month, counted in the database ledger (``usage_counters``).

A document is counted when its job is created, in the same transaction: a request that fails after the
count gives it back by rolling back, and two replicas racing for the last unit cannot both get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from pagemill.errors import AudioTooLong, QuotaExceeded
from pagemill.settings import TierSettings
from pagemill.tenancy import repository as repo

DAY = "day"
MONTH = "month"


@dataclass(frozen=True)
class Period:
    """One quota period: its kind, its ledger key and when it ends."""

    kind: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """The ledger's key for the period: 2026-11-22 or 2026-11."""
        return self.start.strftime("%Y-%m-%d" if self.kind == DAY else "%Y-%m")


def periods(now: datetime) -> tuple[Period, Period]:
    """The UTC day and the UTC month that contain ``now``."""
    today = now.astimezone(UTC).date()
    day_start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    month_start = datetime(today.year, today.month, 1, tzinfo=UTC)
    next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return (
        Period(DAY, day_start, day_start + timedelta(days=1)),
        Period(MONTH, month_start, datetime(next_month.year, next_month.month, 1, tzinfo=UTC)),
    )


def _limit(tier: TierSettings, period: Period) -> int | None:
    return tier.documents_per_day if period.kind == DAY else tier.documents_per_month


def _exceeded(tier_name: str, period: Period, limit: int, now: datetime) -> QuotaExceeded:
    return QuotaExceeded(
        f"The {tier_name} tier allows {limit} documents per {period.kind}; the quota renews at "
        f"{period.end.isoformat()}.",
        retry_after_s=int((period.end - now).total_seconds()) + 1,
        period=period.kind,
        limit=limit,
        resets_at=period.end.isoformat(),
    )


def check_document_quota(
    session: Session, tenant_id: str, tier_name: str, tier: TierSettings, now: datetime
) -> None:
    """Refuse early (before storing an upload) when a quota is already used up; takes nothing."""
    for period in periods(now):
        limit = _limit(tier, period)
        if limit is not None and repo.usage(session, tenant_id, period.kind, period.key) >= limit:
            raise _exceeded(tier_name, period, limit, now)


def check_documents_available(
    session: Session, tenant_id: str, tier_name: str, tier: TierSettings, now: datetime, count: int
) -> None:
    """Refuse early (before storing anything) when ``count`` more documents would pass a quota (a batch is
    refused whole); takes nothing."""
    for period in periods(now):
        limit = _limit(tier, period)
        if limit is None:
            continue
        used = repo.usage(session, tenant_id, period.kind, period.key)
        if used + count > limit:
            raise QuotaExceeded(
                f"The batch has {count} documents; the {tier_name} tier allows {limit} per {period.kind} and "
                f"{max(0, limit - used)} remain until {period.end.isoformat()}.",
                retry_after_s=int((period.end - now).total_seconds()) + 1,
                period=period.kind,
                limit=limit,
                remaining=max(0, limit - used),
                requested=count,
                resets_at=period.end.isoformat(),
            )


def cached_documents(session: Session, tenant_id: str, now: datetime) -> int:
    """Documents of the tenant this UTC month answered from the result cache (counted in the quota too)."""
    _day, month = periods(now)
    return repo.cached_since(session, tenant_id, month.start)


def take_document(
    session: Session, tenant_id: str, tier_name: str, tier: TierSettings, now: datetime
) -> None:
    """Count one document against the day and month quotas, atomically; QuotaExceeded if either is full."""
    for period in periods(now):
        limit = _limit(tier, period)
        if limit is not None and limit < 1:
            raise _exceeded(tier_name, period, limit, now)
        if repo.take_usage(session, tenant_id, period.kind, period.key, limit) is None:
            # Raising rolls the request's transaction back, returning a day count already taken.
            raise _exceeded(tier_name, period, limit or 0, now)


@dataclass(frozen=True)
class PeriodUsage:
    """Documents used in a period, its limit (None: unlimited) and when it renews."""

    used: int
    limit: int | None
    resets_at: datetime


def usage_of(
    session: Session, tenant_id: str, tier: TierSettings, now: datetime
) -> tuple[PeriodUsage, PeriodUsage, int]:
    """A tenant's day and month usage, and the pages read this month."""
    day, month = periods(now)
    return (
        PeriodUsage(repo.usage(session, tenant_id, DAY, day.key), _limit(tier, day), day.end),
        PeriodUsage(repo.usage(session, tenant_id, MONTH, month.key), _limit(tier, month), month.end),
        repo.pages_since(session, tenant_id, month.start),
    )


AUDIO_DAY = "audio-d"
AUDIO_MONTH = "audio-m"
"""Ledger periods of recordings: the same rows as documents, counting seconds of audio."""


def take_audio_seconds(
    session: Session, tenant_id: str, tier_name: str, tier: TierSettings, now: datetime, seconds: int
) -> None:
    """Count ``seconds`` of a recording against the tier's audio minutes per day and month, atomically
    (when the job is planned: its length is known only once it is decoded); AudioTooLong (a job's error,
    not a 429: the job was accepted) when they would pass either."""
    for period in periods(now):
        ledger, limit = _audio_ledger(tier, period)
        if repo.take_usage(session, tenant_id, ledger, period.key, limit, amount=seconds) is None:
            raise _audio_exceeded(
                tier_name, tier, period, seconds, repo.usage(session, tenant_id, ledger, period.key)
            )


def check_audio_seconds(
    session: Session, tenant_id: str, tier_name: str, tier: TierSettings, now: datetime, seconds: int
) -> None:
    """AudioTooLong when ``seconds`` more of recordings would pass the tier's audio minutes per day or month
    now; counts nothing (a recording's pieces are started while it is cut: its length is taken at the end
    with :func:`take_audio_seconds`)."""
    for period in periods(now):
        ledger, limit = _audio_ledger(tier, period)
        if limit is None:
            continue
        used = repo.usage(session, tenant_id, ledger, period.key)
        if used + seconds > limit:
            raise _audio_exceeded(tier_name, tier, period, seconds, used, at_least=True)


def _audio_ledger(tier: TierSettings, period: Period) -> tuple[str, int | None]:
    """The ledger of ``period`` for recordings and the tier's limit in it, in seconds (None: no limit)."""
    minutes = tier.audio_minutes_per_day if period.kind == DAY else tier.audio_minutes_per_month
    return (AUDIO_DAY if period.kind == DAY else AUDIO_MONTH), (None if minutes is None else minutes * 60)


def _audio_exceeded(
    tier_name: str, tier: TierSettings, period: Period, seconds: int, used: int, *, at_least: bool = False
) -> AudioTooLong:
    _, limit = _audio_ledger(tier, period)
    minutes = tier.audio_minutes_per_day if period.kind == DAY else tier.audio_minutes_per_month
    remaining = max(0, (limit or 0) - used)
    length = f"at least {seconds}" if at_least else str(seconds)
    return AudioTooLong(
        f"The recording is {length} seconds long; the {tier_name} tier allows {minutes} minutes of "
        f"recordings per {period.kind} and {remaining} seconds remain until {period.end.isoformat()}.",
        seconds=seconds,
        period=period.kind,
        limit_minutes=minutes,
        remaining_seconds=remaining,
        resets_at=period.end.isoformat(),
    )
