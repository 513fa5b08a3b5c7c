"""The digits of list numbers as office formats write them: roman numerals and two letter schemes.

Each format says which scheme a list uses and how it punctuates the number; these functions only spell
the number. They answer None where the scheme cannot show a number (zero, negatives, roman past 3999),
and the caller writes it in decimal, as Word, PowerPoint, LibreOffice and browsers do.
"""

from __future__ import annotations

from typing import Final

_ROMAN: Final = (
    (1000, "m"),
    (900, "cm"),
    (500, "d"),
    (400, "cd"),
    (100, "c"),
    (90, "xc"),
    (50, "l"),
    (40, "xl"),
    (10, "x"),
    (9, "ix"),
    (5, "v"),
    (4, "iv"),
    (1, "i"),
)


def roman(value: int) -> str | None:
    """``value`` in lower-case roman numerals (1 -> "i", 1994 -> "mcmxciv"); None outside 1..3999."""
    if not 0 < value < 4000:
        return None
    parts: list[str] = []
    for amount, numeral in _ROMAN:
        count, value = divmod(value, amount)
        parts.append(numeral * count)
    return "".join(parts)


def repeated_letters(value: int) -> str | None:
    """``value`` as a..z, then aa..zz, aaa.. (the letter repeated): Word's and PowerPoint's letters, and
    ODF's with ``style:num-letter-sync``; None below 1."""
    if value < 1:
        return None
    return chr(ord("a") + (value - 1) % 26) * ((value - 1) // 26 + 1)


def column_letters(value: int) -> str | None:
    """``value`` as a..z, then aa, ab.. (spreadsheet columns): HTML's and ODF's default letters; None
    below 1."""
    if value < 1:
        return None
    letters = ""
    while value > 0:
        value, digit = divmod(value - 1, 26)
        letters = chr(ord("a") + digit) + letters
    return letters
