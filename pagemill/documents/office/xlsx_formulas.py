"""Cell formulas as Excel's formula bar shows them (``=SUM(A1:A3)``), when formulas are asked for.

A shared formula is written once, in its first cell (``<f t="shared" si="0" ref="B1:B9">A1*2</f>``); the
other cells of the group only name it (``<f t="shared" si="0"/>``) and hold the same formula moved with the
cell: relative references shift by the distance from the first cell, absolute ones (``$A$1``) stay. A
reference moved off the grid becomes ``#REF!``, as in Excel.
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

_MAX_ROWS: Final = 1_048_576
_MAX_COLS: Final = 16_384
# Scanned left to right: string literals, quoted sheet names, bracketed parts (structured references,
# external workbooks) and error literals are kept as they are; a reference is a cell (A1, $B$2), a range
# of cells, whole columns (A:C) or whole rows (1:3), not part of a longer name, a function's name or an
# unquoted sheet name (followed by "!").
_CELL: Final = r"\$?[A-Za-z]{1,3}\$?\d{1,7}"
_TOKENS: Final = re.compile(
    r'(?P<keep>"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|\[[^\]]*\]|#[A-Za-z0-9/!?]+)'
    r"|(?<![\w.$])(?P<ref>"
    rf"{_CELL}(?::{_CELL})?"
    r"|\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}"
    r"|\$?\d{1,7}:\$?\d{1,7}"
    r")(?![\w.(\[!])"
)
_PART: Final = re.compile(r"(\$?)([A-Za-z]*)(\$?)(\d*)")


class SharedFormulas:
    """The shared formulas of one sheet, by their ``si``, as their first cells wrote them."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[str, int, int]] = {}

    def text(self, formula: etree._Element, row: int, col: int) -> str | None:
        """The formula of the cell at ``row``, ``col`` (1-based) holding ``<f>`` element ``formula``;
        None when it has no text to show (a shared formula whose first cell has not been read)."""
        text = formula.text or ""
        kind = formula.get("t")
        if kind == "shared":
            group = formula.get("si", "")
            first = self._first.get(group)
            if first is not None:
                return "=" + move_formula(first[0], row - first[1], col - first[2])
            if text:
                self._first[group] = (text, row, col)
        elif kind == "dataTable":
            return _data_table(formula)
        return "=" + text if text else None


def move_formula(formula: str, rows: int, cols: int) -> str:
    """``formula`` (without its "=") moved ``rows`` down and ``cols`` right: its relative references
    shifted."""
    if rows == 0 and cols == 0:
        return formula

    def replace(match: re.Match[str]) -> str:
        reference = match.group("ref")
        if reference is None:
            return match.group(0)
        moved = [_move_part(part, rows, cols) for part in reference.split(":")]
        return "#REF!" if None in moved else ":".join(part for part in moved if part is not None)

    return _TOKENS.sub(replace, formula)


def _move_part(part: str, rows: int, cols: int) -> str | None:
    """One end of a reference ("$A1", "B", "$3") moved; None when it leaves the grid."""
    match = _PART.fullmatch(part)
    if match is None:
        return part
    col_lock, letters, row_lock, digits = match.groups()
    if not letters:  # a whole-row reference: its "$" locks the row
        col_lock, row_lock = "", col_lock or row_lock
    if letters and not col_lock:
        column = _column(letters) + cols
        if not 1 <= column <= _MAX_COLS:
            return None
        letters = _letters(column)
    if digits and not row_lock:
        number = int(digits) + rows
        if not 1 <= number <= _MAX_ROWS:
            return None
        digits = str(number)
    return f"{col_lock}{letters}{row_lock}{digits}"


def _column(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _letters(column: int) -> str:
    letters = ""
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _data_table(formula: etree._Element) -> str:
    """A what-if data table's formula as Excel shows it: ``=TABLE(row input, column input)``."""
    first, second = formula.get("r1", ""), formula.get("r2", "")
    if formula.get("dt2D") in ("1", "true"):
        return f"=TABLE({first},{second})"
    if formula.get("dtr") in ("1", "true"):
        return f"=TABLE({first},)"
    return f"=TABLE(,{first})"
