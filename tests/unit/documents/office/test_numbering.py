"""The digits of list numbers: roman numerals and both letter schemes, and where each gives up."""

from __future__ import annotations

import pytest

from pagemill.documents.office import numbering
from pagemill.documents.office.docx_numbering import format_number as docx_number
from pagemill.documents.office.html_lists import format_number as html_number
from pagemill.documents.office.odf_lists import format_number as odf_number
from pagemill.documents.office.pptx_text import format_number as pptx_number


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, "i"), (4, "iv"), (9, "ix"), (14, "xiv"), (40, "xl"), (1994, "mcmxciv"), (3999, "mmmcmxcix")],
)
def test_roman(value: int, expected: str) -> None:
    assert numbering.roman(value) == expected


@pytest.mark.parametrize("value", [0, -3, 4000])
def test_roman_cannot_show_zero_negatives_or_4000(value: int) -> None:
    assert numbering.roman(value) is None


@pytest.mark.parametrize(
    ("value", "repeated", "column"),
    [
        (1, "a", "a"),
        (26, "z", "z"),
        (27, "aa", "aa"),
        (28, "bb", "ab"),
        (53, "aaa", "ba"),
        (78, "zzz", "bz"),
    ],
)
def test_letter_schemes(value: int, repeated: str, column: str) -> None:
    assert numbering.repeated_letters(value) == repeated
    assert numbering.column_letters(value) == column


def test_letters_start_at_one() -> None:
    assert numbering.repeated_letters(0) is None
    assert numbering.column_letters(-1) is None


def test_each_format_falls_back_to_decimal_where_its_scheme_cannot_show_the_number() -> None:
    assert docx_number(28, "upperLetter") == "BB"
    assert docx_number(0, "lowerRoman") == "0"
    assert html_number(28, "A") == "AB"
    assert html_number(4000, "i") == "4000"
    assert odf_number(28, "a", letter_sync=True) == "bb"
    assert odf_number(28, "a") == "ab"
    assert odf_number(100_001, "a") == "100001"
    assert odf_number(14, "I") == "XIV"
    assert pptx_number(4, "romanUcParenBoth") == "(IV)"
    assert pptx_number(0, "alphaLcParenR") == "0)"
