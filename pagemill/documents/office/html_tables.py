"""HTML tables into :class:`Table` blocks: rows from ``thead``/``tbody``/``tfoot``, cells placed on the grid
as browsers place them (``rowspan``/``colspan``), header rows, caption.

Spans are capped at 1000 and the grid at ``limits.max_sheet_cells`` positions (TooManyCells), so
``colspan="999999"`` costs nothing. A table used for page layout (one cell, or tables inside its cells) is
not a table of data: the caller reads its cells' content as ordinary blocks instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from lxml import etree

from pagemill.documents.office.blocks import Cell, Table
from pagemill.documents.office.html_parse import local_name
from pagemill.errors import TooManyCells
from pagemill.settings import LimitSettings

MAX_SPAN: Final = 1000
_LEADING_INT: Final = re.compile(r"\s*(\d{1,9})")

CellReader = Callable[[etree._Element], tuple[str, str]]
"""A cell's content as (plain text, markdown)."""


@dataclass(slots=True)
class _Row:
    element: etree._Element
    head: bool
    cells: list[etree._Element]


def layout_tables(root: etree._Element) -> set[etree._Element]:
    """The tables of the document that hold other tables (page layout, not data), found in one pass."""
    marked: set[etree._Element] = set()
    for table in root.iter():
        if local_name(table) != "table":
            continue
        parent = table.getparent()
        while parent is not None:
            if local_name(parent) == "table":
                if parent in marked:
                    break  # its ancestors were marked when it was
                marked.add(parent)
            parent = parent.getparent()
    return marked


def read_table(
    table: etree._Element,
    read_cell: CellReader,
    hidden: Callable[[etree._Element], bool],
    limits: LimitSettings,
) -> Table | None:
    """The data table ``table`` is, or None when it is a layout table of a single cell or has no cells."""
    rows, caption = _rows(table, hidden)
    if sum(len(row.cells) for row in rows) <= 1:
        return None
    n_rows = len(rows)
    cells: list[Cell] = []
    covered: dict[int, set[int]] = {}
    area = 0
    for r, row in enumerate(rows):
        taken = covered.get(r, set())
        col = 0
        for element in row.cells:
            while col in taken:
                col += 1
            row_span = _span(element.get("rowspan"), zero_means=n_rows - r)
            row_span = min(row_span, n_rows - r)
            col_span = _span(element.get("colspan"), zero_means=1)
            area += row_span * col_span
            if area > limits.max_sheet_cells:
                raise TooManyCells(
                    "A table of the document has more cells than allowed.", max_cells=limits.max_sheet_cells
                )
            for below in range(r + 1, r + row_span):
                covered.setdefault(below, set()).update(range(col, col + col_span))
            text, md = read_cell(element)
            cells.append(
                Cell(
                    text=text,
                    row=r,
                    col=col,
                    row_span=row_span,
                    col_span=col_span,
                    md=md if md != text else None,
                    header=row.head or local_name(element) == "th",
                )
            )
            col += col_span
    n_cols = max(cell.col + cell.col_span for cell in cells)
    if n_rows * n_cols > limits.max_sheet_cells:
        raise TooManyCells(
            "A table of the document has more cells than allowed.", max_cells=limits.max_sheet_cells
        )
    return Table(cells=cells, n_rows=n_rows, n_cols=n_cols, header_rows=_header_rows(rows), caption=caption)


def _rows(table: etree._Element, hidden: Callable[[etree._Element], bool]) -> tuple[list[_Row], str | None]:
    """The table's rows in display order (head, body, foot) and its caption."""
    head: list[_Row] = []
    body: list[_Row] = []
    foot: list[_Row] = []
    caption: str | None = None
    for child in table:
        tag = local_name(child)
        if tag is None or hidden(child):
            continue
        if tag == "caption" and caption is None:
            caption = " ".join(etree.tostring(child, method="text", encoding=str, with_tail=False).split())
        elif tag == "tr":
            body.append(_row(child, head=False, hidden=hidden))
        elif tag in ("thead", "tbody", "tfoot"):
            group = {"thead": head, "tbody": body, "tfoot": foot}[tag]
            group.extend(
                _row(tr, head=tag == "thead", hidden=hidden)
                for tr in child
                if local_name(tr) == "tr" and not hidden(tr)
            )
    return [*head, *body, *foot], caption or None


def _row(tr: etree._Element, *, head: bool, hidden: Callable[[etree._Element], bool]) -> _Row:
    cells = [cell for cell in tr if local_name(cell) in ("td", "th") and not hidden(cell)]
    return _Row(tr, head, cells)


def _header_rows(rows: list[_Row]) -> int:
    """Rows of a ``thead``, else the leading rows made only of ``th`` cells (one, if every row is)."""
    heads = sum(1 for row in rows if row.head)
    if heads:
        return heads
    count = 0
    for row in rows:
        if not row.cells or any(local_name(cell) != "th" for cell in row.cells):
            break
        count += 1
    return 1 if count == len(rows) and count > 1 else count


def _span(value: str | None, *, zero_means: int) -> int:
    """A span attribute as browsers read it (leading digits), 1 if absent or invalid, at most MAX_SPAN."""
    match = _LEADING_INT.match(value or "")
    if match is None:
        return 1
    span = int(match.group(1))
    if span == 0:
        span = zero_means
    return max(1, min(span, MAX_SPAN))
