"""The page-range grammar: what submission accepts, and which pages a valid range selects."""

from __future__ import annotations

import pytest

from pagemill.errors import InvalidPageRange, ValidationFailed
from pagemill.jobs.options import JobOptions, OutputFormat, select_pages, validate_page_range


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1", "1"),
        ("1-3,5", "1-3,5"),
        ("9-", "9-"),
        (" 2 - 4 ", "2 - 4"),
        ("3-3", "3-3"),
        ("1, 4-6 ,10-", "1, 4-6 ,10-"),
    ],
)
def test_valid_ranges_are_accepted_and_trimmed(spec: str, expected: str) -> None:
    assert validate_page_range(spec) == expected


@pytest.mark.parametrize("spec", [None, "", "   "])
def test_no_range_means_every_page(spec: str | None) -> None:
    assert validate_page_range(spec) is None


@pytest.mark.parametrize(
    "spec",
    ["0", "0-2", "3-1", "a", "1--2", "-3", "1,,2", "1-3,", "1.5", "1-3;5", "1 2", "+1"],
)
def test_invalid_ranges_are_validation_errors(spec: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_page_range(spec)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.http_status == 422
    assert caught.value.details == {"field": "page_range", "value": spec}


def test_an_absurdly_long_page_number_is_a_validation_error_not_a_crash() -> None:
    # int() refuses strings of more than 4,300 digits with a bare ValueError, which the API would turn
    # into a 500; a client typo or probe must get the same 422 as any other malformed range.
    for spec in ["1" * 5000, "1-" + "9" * 5000]:
        with pytest.raises(ValidationFailed):
            validate_page_range(spec)


def test_no_range_selects_every_page() -> None:
    assert select_pages(None, 4) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("spec", "page_count", "expected"),
    [
        ("1", 5, [0]),
        ("1-3,5", 5, [0, 1, 2, 4]),
        ("2-", 5, [1, 2, 3, 4]),  # open range runs to the end
        ("5-", 5, [4]),
        (" 2 - 4 ", 9, [1, 2, 3]),
        ("3-10", 5, [2, 3, 4]),  # clipped to the document
        ("4,9", 5, [3]),  # a page past the end is dropped when another page is selected
        ("1-3,2-4", 9, [0, 1, 2, 3]),  # overlapping parts select each page once
        ("5,1,3", 9, [0, 2, 4]),  # document order, whatever the order of the parts
        ("2,2,2", 9, [1]),
    ],
)
def test_select_pages(spec: str, page_count: int, expected: list[int]) -> None:
    assert select_pages(spec, page_count) == expected


@pytest.mark.parametrize("spec", ["7", "6-", "6-9", "10,20-30"])
def test_a_range_that_selects_nothing_is_invalid_for_the_document(spec: str) -> None:
    with pytest.raises(InvalidPageRange) as caught:
        select_pages(spec, 5)
    assert caught.value.code == "INVALID_PAGE_RANGE"
    assert caught.value.http_status == 422
    assert caught.value.details == {"page_range": spec, "page_count": 5}


def test_every_valid_range_selects_pages_within_the_document() -> None:
    for spec in ["1", "1-3,5", "9-", "2-4", "1-100", "3,1-2"]:
        validate_page_range(spec)
        for page_count in (1, 3, 9, 100):
            try:
                selected = select_pages(spec, page_count)
            except InvalidPageRange:
                continue
            assert selected == sorted(set(selected))
            assert all(0 <= index < page_count for index in selected)


def test_default_options_request_every_format_and_all_pages() -> None:
    options = JobOptions()
    assert options.formats == [OutputFormat.MARKDOWN, OutputFormat.TEXT, OutputFormat.JSON]
    assert options.page_range is None
    assert options.formats is not JobOptions().formats  # no shared mutable default
