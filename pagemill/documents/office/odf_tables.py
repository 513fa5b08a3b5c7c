"""OpenDocument tables: a text or slide table (``table:table`` in ODT/ODP) and a sheet of an ODS workbook,
placed on a grid cell by cell.

Rows and cells carry repeat counts (``table:number-rows-repeated``, ``table:number-columns-repeated``):
a sheet commonly ends with an empty row repeated a million times and rows with an empty cell repeated a
thousand times. Empty repeats only move the position, they are never expanded; repeated cells with content
are expanded, counted against ``limits.max_sheet_cells`` before they are. Merged cells are the cell with
``table:number-columns-spanned``/``number-rows-spanned`` at the top left; the positions they cover are
``table:covered-table-cell`` elements, skipped.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Final

from lxml import etree

from pagemill.documents.office.blocks import Block, Cell, Table
from pagemill.documents.office.odf_styles import OFFICE, parse_count, table
from pagemill.errors import TooManyCells

CellReader = Callable[[etree._Element], tuple[str, str, list[Block]]]
"""Reads a ``table:table-cell`` into (text, markdown, blocks that go after the table: pictures, notes)."""

_TABLE: Final = table("table")
_ROW: Final = table("table-row")
_CELL: Final = table("table-cell")
_COVERED: Final = table("covered-table-cell")
_HEADER_ROWS: Final = table("table-header-rows")
_ROW_GROUPS: Final = (table("table-rows"), table("table-row-group"), _HEADER_ROWS)
_ROWS_REPEATED: Final = table("number-rows-repeated")
_COLS_REPEATED: Final = table("number-columns-repeated")
_ROWS_SPANNED: Final = table("number-rows-spanned")
_COLS_SPANNED: Final = table("number-columns-spanned")
# ODF allows 2^20 rows and 2^14 columns; a larger count is hostile.
_MAX_ROWS: Final = 1 << 20
_MAX_COLS: Final = 1 << 14
# A text table keeps its empty trailing rows and columns (its drawn shape) while it stays this small;
# a larger one (cells pasted from a sheet with a thousand empty columns) is trimmed to its content.
_TEXT_TABLE_SHAPE_CELLS: Final = 10_000
_TEXT_TABLE_SHAPE_COLS: Final = 64


class CellBudget:
    """The cell limit of a document's tables: ``max_cells`` positions a table (a sheet) may cover, and as
    many cells in all that repeat counts copy (a workbook of sheets each just under the limit by repeating
    one cell would otherwise fill memory from a few bytes of XML)."""

    def __init__(self, max_cells: int) -> None:
        self.max_cells = max_cells
        self._copies = 0

    def copy(self, cells: int) -> None:
        """Count ``cells`` copies made by repeat counts; TooManyCells past the limit."""
        self._copies += cells
        if self._copies > self.max_cells:
            raise TooManyCells(max_cells=self.max_cells, repeated=True)


class GridBuilder:
    """Cells placed on a grid as rows arrive (a sheet's rows are streamed in and dropped once placed).
    Rows come in order and a row's cells left to right, so ``cells`` is in reading order."""

    def __init__(self, budget: CellBudget) -> None:
        self.cells: list[Cell] = []
        self.side: list[Block] = []
        self.row = 0
        self.width = 0
        self.header_rows = 0
        self._budget = budget
        self._max_cells = budget.max_cells
        self._count = 0

    def add_row(self, row: etree._Element, read_cell: CellReader, header: bool = False) -> None:
        """Place the cells of a ``table:table-row`` (with its repeats) at the next row."""
        repeat = _count(row.get(_ROWS_REPEATED), _MAX_ROWS)
        found: list[tuple[int, int, int, int, str, str | None]] = []
        col = 0
        for cell in row:
            tag = cell.tag
            if tag != _CELL and tag != _COVERED:
                continue
            count = _count(cell.get(_COLS_REPEATED), _MAX_COLS)
            if tag == _CELL and col < _MAX_COLS:
                text, md, side = read_cell(cell)
                if side:
                    self.side.extend(side)
                if text or md:
                    rows = _count(cell.get(_ROWS_SPANNED), _MAX_ROWS)
                    cols = _count(cell.get(_COLS_SPANNED), _MAX_COLS)
                    found.append(
                        (col, min(count, _MAX_COLS - col), rows, cols, text, md if md != text else None)
                    )
            col += count
        self.width = max(self.width, min(col, _MAX_COLS))
        if found:
            # Count every position the row's content covers, repeats and merges included, before placing.
            self._count += repeat * sum(count * rows * cols for _, count, rows, cols, _, _ in found)
            if self._count > self._max_cells:
                raise TooManyCells(max_cells=self._max_cells)
            self._budget.copy(repeat * sum(count for _, count, _, _, _, _ in found) - len(found))
            place = self.cells.append
            for at in range(self.row, self.row + repeat):
                for start, count, rows, cols, words, markdown in found:
                    for col in range(start, start + count):
                        place(Cell(words, at, col, rows, cols, markdown, header))
        self.row = min(self.row + repeat, _MAX_ROWS)
        if header and self.header_rows == self.row - repeat:
            self.header_rows = self.row

    def text_table(self) -> Table | None:
        """The table as drawn (empty trailing rows and columns kept while small); None when empty."""
        if not self.cells:
            return None
        used_rows = max(cell.row + cell.row_span for cell in self.cells)
        used_cols = max(cell.col + cell.col_span for cell in self.cells)
        n_rows, n_cols = self.row, self.width
        if n_cols > _TEXT_TABLE_SHAPE_COLS or n_rows * n_cols > _TEXT_TABLE_SHAPE_CELLS:
            n_rows, n_cols = min(n_rows, used_rows), min(n_cols, used_cols)
        if n_rows * n_cols > self._max_cells:
            raise TooManyCells(max_cells=self._max_cells)
        for cell in self.cells:
            cell.row_span = min(cell.row_span, n_rows - cell.row)
            cell.col_span = min(cell.col_span, n_cols - cell.col)
        header_rows = min(self.header_rows, n_rows)
        return Table(cells=self.cells, n_rows=n_rows, n_cols=n_cols, header_rows=header_rows)

    def sheet_tables(self) -> list[Table]:
        """The sheet's used range as tables: split where a whole row or column between them is empty,
        each trimmed to its content, the first row its header. The cells are moved into the tables."""
        tables: list[Table] = []
        area = 0
        for row_start, row_end, in_rows in _row_bands(self.cells):
            for col_start, col_end, group in _column_bands(in_rows):
                n_rows, n_cols = row_end - row_start, col_end - col_start
                area += n_rows * n_cols
                if area > self._max_cells:
                    raise TooManyCells(max_cells=self._max_cells)
                if row_start or col_start:
                    for cell in group:
                        cell.row -= row_start
                        cell.col -= col_start
                tables.append(Table(cells=group, n_rows=n_rows, n_cols=n_cols, header_rows=1))
        self.cells = []
        return tables


def _count(value: str | None, high: int) -> int:
    """A repeat or span count: 1 when absent, at least 1 and at most ``high``."""
    return 1 if value is None else max(parse_count(value, high=high), 1)


def _row_bands(cells: list[Cell]) -> Iterator[tuple[int, int, list[Cell]]]:
    """Runs of cells (in reading order) whose rows touch or overlap: (first row, end row, cells)."""
    group: list[Cell] = []
    start = end = 0
    for cell in cells:
        if group and cell.row > end:
            yield start, end, group
            group = []
        if not group:
            start, end = cell.row, cell.row
        group.append(cell)
        end = max(end, cell.row + cell.row_span)
    if group:
        yield start, end, group


def _column_bands(cells: list[Cell]) -> list[tuple[int, int, list[Cell]]]:
    """The cells of a row band split where a whole column is empty, each group in reading order."""
    bands: list[list[int]] = []
    for low, high in sorted({(cell.col, cell.col + cell.col_span) for cell in cells}):
        if bands and low <= bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], high)
        else:
            bands.append([low, high])
    if len(bands) == 1:
        return [(bands[0][0], bands[0][1], cells)]
    starts = [low for low, _ in bands]
    groups: list[list[Cell]] = [[] for _ in bands]
    for cell in cells:
        groups[bisect_right(starts, cell.col) - 1].append(cell)
    return [(low, high, group) for (low, high), group in zip(bands, groups, strict=True)]


def read_text_table(element: etree._Element, read_cell: CellReader, budget: CellBudget) -> list[Block]:
    """A ``table:table`` of a text document or a slide: the Table (when it has content), then the
    pictures and notes its cells hold."""
    builder = GridBuilder(budget)
    for row, header in _rows(element, False):
        builder.add_row(row, read_cell, header)
    result = builder.text_table()
    return ([result] if result is not None else []) + builder.side


def _rows(container: etree._Element, header: bool) -> Iterator[tuple[etree._Element, bool]]:
    for child in container:
        if child.tag == _ROW:
            yield child, header
        elif child.tag in _ROW_GROUPS:
            yield from _rows(child, header or child.tag == _HEADER_ROWS)


def table_text(result: Table) -> str:
    """A table's cells' text in reading order, one row a line (a table nested in a cell)."""
    rows: list[str] = []
    for row in range(result.n_rows):
        texts = [cell.text for cell in result.cells if cell.row == row and cell.text]
        if texts:
            rows.append(" ".join(texts))
    return "\n".join(rows)


_VALUE_ATTRIBUTES: Final = {
    "float": "value",
    "percentage": "value",
    "currency": "value",
    "date": "date-value",
    "time": "time-value",
    "string": "string-value",
}


def cached_value(cell: etree._Element) -> str:
    """The value a sheet cell stores (for a cell without displayed text): the number, date, time or
    boolean as written in the file."""
    kind = cell.get(f"{{{OFFICE}}}value-type")
    if kind == "boolean":
        value = cell.get(f"{{{OFFICE}}}boolean-value")
        return "" if value is None else ("TRUE" if value == "true" else "FALSE")
    attribute = _VALUE_ATTRIBUTES.get(kind or "")
    return cell.get(f"{{{OFFICE}}}{attribute}", "") if attribute else ""


_NAMESPACE_PREFIX: Final = re.compile(r"^(?:of|oooc|msoxl):")
_REFERENCE: Final = re.compile(r"\[([^\[\]]*)\]")


def formula_text(formula: str) -> str:
    """A cell formula as a spreadsheet shows it: ``of:=SUM([.A1:.A3])`` -> ``=SUM(A1:A3)``, references
    to other sheets as ``Sheet2!A1``."""
    body = _NAMESPACE_PREFIX.sub("", formula, count=1)
    body = _REFERENCE.sub(lambda match: ":".join(_reference(part) for part in match[1].split(":")), body)
    return body if body.startswith("=") else "=" + body


def _reference(part: str) -> str:
    if part.startswith("."):
        return part[1:]
    sheet, dot, cell = part.rpartition(".")
    return f"{sheet.lstrip('$')}!{cell}" if dot and sheet else part
