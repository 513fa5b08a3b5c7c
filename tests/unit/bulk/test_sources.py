"""Backfill filters and the values of their options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pagemill.bulk.backfill import parse_rate
from pagemill.bulk.sources import Filters, SourceObject, parse_size, parse_time, parse_types

MAY = datetime(2024, 5, 1, tzinfo=UTC)


def obj(key: str, size: int = 1000, modified: datetime = MAY) -> SourceObject:
    return SourceObject(key=key, location=f"/archive/{key}", size=size, modified=modified, version="1")


def test_types_go_by_file_name_and_image_means_every_image_kind() -> None:
    assert parse_types("pdf") == {"pdf"}
    assert parse_types("image") == {"png", "jpeg", "tiff", "webp"}
    assert parse_types(" PDF , png ") == {"pdf", "png"}
    with pytest.raises(ValueError, match="docx"):
        parse_types("pdf,docx")
    only_pdf = Filters(kinds=parse_types("pdf"))
    assert only_pdf.rejects(obj("a/b.PDF")) is None
    assert only_pdf.rejects(obj("a/b.png")) == "type"
    assert Filters().rejects(obj("scan.JPEG")) is None
    assert Filters().rejects(obj("notes.txt")) == "type", "what Pagemill cannot read is never sent"
    assert Filters().rejects(obj("no-suffix")) == "type"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1500", 1500),
        ("10k", 10_000),
        ("10KB", 10_000),
        ("5MiB", 5 * 1024**2),
        ("1.5m", 1_500_000),
        ("2g", 2e9),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["huge", "10 parsecs", "-5", "k"])
def test_sizes_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_size_and_time_windows() -> None:
    filters = Filters(
        min_size=100,
        max_size=2000,
        modified_since=parse_time("2024-05-01"),
        modified_until=parse_time("2024-06-01"),
    )
    assert filters.rejects(obj("a.pdf")) is None
    assert filters.rejects(obj("a.pdf", size=99)) == "size"
    assert filters.rejects(obj("a.pdf", size=2001)) == "size"
    assert filters.rejects(obj("a.pdf", modified=MAY - timedelta(seconds=1))) == "modified"
    assert filters.rejects(obj("a.pdf", modified=datetime(2024, 6, 1, tzinfo=UTC))) == "modified", (
        "until excludes"
    )


def test_times_without_an_offset_are_utc() -> None:
    assert parse_time("2024-05-01") == MAY
    assert parse_time("2024-05-01T02:00:00+02:00") == MAY
    assert parse_time("2024-05-01T00:00:00Z") == MAY
    assert parse_time("2024-05-01T08:00:00-05:00").tzinfo == timezone(timedelta(hours=-5))
    with pytest.raises(ValueError):
        parse_time("yesterday")


@pytest.mark.parametrize(("text", "per_second"), [("5", 5.0), ("5/s", 5.0), ("120/m", 2.0), ("0.5/s", 0.5)])
def test_rates(text: str, per_second: float) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("text", ["fast", "0", "-1/s", "5/day"])
def test_rates_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)
