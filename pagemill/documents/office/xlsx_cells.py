"""A worksheet's cell texts, streamed from its XML with bounded memory.

Each ``<row>`` is read when it ends, its cells one by one, then freed with the rows before it: a sheet of
two million cells never becomes a tree, and what stays is the texts (at most one row of elements is held,
and a row has at most 16,384 cells). Reading whole rows rather than one event per ``<c>`` halves the time:
an event per cell costs more in lxml than walking the finished row's children.

A cell's text is its cached value (numbers in their cell style's format, dates in the workbook's date
system, shared, inline and formula strings, booleans, errors), or its formula when formulas are asked for
and it has one. The sheet was measured by :mod:`xlsx_scan` first: cells beyond the used range it measured
are not read.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.ooxml_chart import format_general
from pagemill.documents.office.xlsx_book import Book, string_item_text
from pagemill.documents.office.xlsx_formulas import SharedFormulas
from pagemill.documents.office.xlsx_scan import SheetScan, column_number
from pagemill.documents.office.xlsx_values import NumberStyle, cell_text, number_text
from pagemill.errors import CorruptFile, PagemillError

_LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$"
_CACHED_COLUMNS: Final = 32_768

SheetValues = dict[int, dict[int, str]]


def sheet_values(
    package: SafeZip, part: str, sheet: str, scan: SheetScan, book: Book, formulas: bool
) -> SheetValues:
    """The sheet's non-empty cell texts by row and column (0-based); CorruptFile when a cell is damaged
    (a number that is not one, a shared string that does not exist) or the XML is broken."""
    values: SheetValues = {}
    if scan.cells == 0:
        return values
    with package.open(part) as stream:
        rows = etree.iterparse(
            stream, events=("end",), tag="{*}row", resolve_entities=False, no_network=True, huge_tree=False
        )
        reader = _RowReader(book, formulas, scan, values)
        try:
            for _, row in rows:
                reader.read(row)
                row.clear()
                parent = row.getparent()
                if parent is not None:
                    while row.getprevious() is not None:
                        del parent[0]
        except PagemillError:
            raise
        except etree.XMLSyntaxError as exc:
            raise CorruptFile("A sheet of the workbook is not well-formed XML.", sheet=sheet) from exc
        except (ValueError, IndexError, OverflowError) as exc:
            raise CorruptFile("A sheet of the workbook has a damaged cell.", sheet=sheet) from exc
    return values


class _RowReader:
    """Reads rows into ``values``: each cell's position (its reference, or the one after the cell before
    it) and text."""

    def __init__(self, book: Book, formulas: bool, scan: SheetScan, values: SheetValues) -> None:
        self.strings = book.strings
        self.styles = book.styles
        self.epoch = book.epoch
        self.shared = SharedFormulas() if formulas else None
        self.max_row, self.max_col = scan.max_row, scan.max_col
        self.values = values
        self.row = 0  # the last row's number, for a row without one
        self.columns: dict[str, int] = {}
        self.row_tag = self.cell_tag = self.value_tag = self.formula_tag = self.inline_tag = ""

    def read(self, row: etree._Element) -> None:
        """Read the cells of ``row``."""
        if row.tag != self.row_tag:  # the first row: its cells are in its namespace
            self.row_tag, namespace = row.tag, row.tag[:-3]
            self.cell_tag, self.value_tag, self.formula_tag, self.inline_tag = (
                namespace + name for name in ("c", "v", "f", "is")
            )
        number = row.get("r")
        self.row = self.row + 1 if number is None else _row_number(number)
        cell_tag, value_tag, columns, max_row, max_col = (
            self.cell_tag,
            self.value_tag,
            self.columns,
            self.max_row,
            self.max_col,
        )
        col = 0
        for cell in row:
            if cell.tag != cell_tag:
                continue  # an extension list
            ref = cell.get("r")
            if ref is None:
                cell_row, col = self.row, col + 1
            else:
                digits = ref.lstrip(_LETTERS)
                col = columns.get(ref[: len(ref) - len(digits)]) or self._column(ref, digits)
                cell_row = int(digits)
            if not 0 < cell_row <= max_row or col > max_col:
                continue
            value = formula = inline = None
            for child in cell:
                tag = child.tag
                if tag == value_tag:
                    value = child.text
                elif tag == self.formula_tag:
                    formula = child
                elif tag == self.inline_tag:
                    inline = child
            text = None
            if formula is not None and self.shared is not None:
                text = self.shared.text(formula, cell_row, col)
            if text is None:
                text = self._text(cell, value, inline)
            if text and not text.isspace():
                row_values = self.values.get(cell_row - 1)
                if row_values is None:
                    row_values = self.values[cell_row - 1] = {}
                row_values[col - 1] = text

    def _text(self, cell: etree._Element, value: str | None, inline: etree._Element | None) -> str:
        """The text of ``cell``'s cached value ``value`` (or inline string ``inline``)."""
        kind = cell.get("t")
        if kind == "inlineStr":
            return string_item_text(inline) if inline is not None else ""
        if not value:
            return ""
        if kind is None or kind == "n":
            style = cell.get("s")
            if style is None:  # General, the common case, without a call
                if "." in value or "E" in value or "e" in value:
                    return format_general(float(value))
                return str(int(value))
            return number_text(value, self._style(style), self.epoch)
        if kind == "s":
            index = int(value)
            if index < 0:
                raise IndexError(index)
            return self.strings[index]
        if kind == "b":
            return "TRUE" if int(value) else "FALSE"
        if kind == "d":
            return _iso_date(value)
        return value  # "str" (a formula's string), "e" (an error value) and anything unknown, as stored

    def _column(self, ref: str, digits: str) -> int:
        letters = ref[: len(ref) - len(digits)]
        column = column_number(letters.replace("$", ""))  # CorruptFile outside A..XFD
        if len(self.columns) < _CACHED_COLUMNS:  # A..XFD, but spelled with "$" or in lower case too
            self.columns[letters] = column
        return column

    def _style(self, style: str) -> NumberStyle | None:
        try:
            return self.styles[int(style)]
        except (ValueError, IndexError):
            return None  # a style the workbook does not define: General


def _iso_date(value: str) -> str:
    """A date cell (``t="d"``, ISO 8601 text) shown as the other dates are; as stored when it is not
    one."""
    try:
        if "T" in value:
            return cell_text(dt.datetime.fromisoformat(value.rstrip("Z")))
        if ":" in value:
            return cell_text(dt.time.fromisoformat(value))
        return cell_text(dt.date.fromisoformat(value))
    except ValueError:
        return value


def _row_number(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise CorruptFile("A sheet of the workbook has a row with a bad number.") from exc
