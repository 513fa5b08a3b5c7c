"""DOCX tables (``w:tbl``) as Table blocks on the table's grid.

A cell spans columns with ``w:gridSpan`` and rows with ``w:vMerge`` (``restart`` opens a merged cell, a bare
``w:vMerge`` continues the one above); ``w:gridBefore`` leaves a row's first grid columns empty. A cell's
content is read as blocks (paragraphs, lists, nested tables) and flattened to its text: a nested table
becomes its rows, one line each. Rows marked ``w:tblHeader`` (repeated on every printed page) are the
header; without any, the first row is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pagemill.documents.office.blocks import Block, Cell, Heading, Image, ListItem, Note, Paragraph, Table
from pagemill.documents.office.docx_xml import Element, as_int, attr, child, child_val, is_on, key
from pagemill.errors import TooManyCells
from pagemill.settings import LimitSettings

BlockReader = Callable[[Element], list[Block]]


def _items(element: Element, name: str) -> Iterator[Element]:
    """Children named ``name``, also those wrapped in content controls or custom XML (a row in an
    ``w:sdt``)."""
    for item in element:
        tag = key(item)
        if tag == name:
            yield item
        elif tag == "w:sdt":
            content = child(item, "w:sdtContent")
            if content is not None:
                yield from _items(content, name)
        elif tag in ("w:customXml", "w:ins", "w:moveTo"):
            yield from _items(item, name)


def read_table(
    table: Element, read_blocks: BlockReader, limits: LimitSettings
) -> tuple[Table | None, list[Image]]:
    """The table block (None for a table without cells) and the pictures found in its cells."""
    grid = child(table, "w:tblGrid")
    grid_cols = sum(1 for item in grid if key(item) == "w:gridCol") if grid is not None else 0
    cells: list[Cell] = []
    images: list[Image] = []
    open_cells: dict[int, Cell] = {}
    header_rows = 0
    headers_done = False
    n_cols = grid_cols
    rows = list(_items(table, "w:tr"))
    for row_index, row in enumerate(rows):
        trpr = child(row, "w:trPr")
        if not headers_done and is_on(child(trpr, "w:tblHeader")):
            header_rows += 1
        else:
            headers_done = True
        col = as_int(child_val(trpr, "w:gridBefore"))
        continued: dict[int, Cell] = {}
        previous: Cell | None = None
        for tc in _items(row, "w:tc"):
            tcpr = child(tc, "w:tcPr")
            span = max(as_int(child_val(tcpr, "w:gridSpan"), 1), 1)
            _check_size(len(rows), col + span, limits)
            vmerge = child(tcpr, "w:vMerge")
            hmerge = child(tcpr, "w:hMerge")
            above = open_cells.get(col)
            if vmerge is not None and attr(vmerge, "w:val") in (None, "continue") and above is not None:
                # Continues the merged cell above: it grows by this row; its text is the first cell's.
                above.row_span = row_index - above.row + 1
                continued[col] = above
                previous = above
            elif hmerge is not None and attr(hmerge, "w:val") in (None, "continue") and previous is not None:
                previous.col_span += span
            else:
                text, md, found = cell_content(read_blocks(tc))
                images.extend(found)
                previous = Cell(text, row_index, col, col_span=span, md=md if md != text else None)
                cells.append(previous)
                if vmerge is not None:
                    continued[col] = previous
            col += span
        open_cells = continued
        n_cols = max(n_cols, col)
    if not cells or n_cols == 0:
        return None, images
    _check_size(len(rows), n_cols, limits)
    header_rows = min(header_rows or 1, len(rows))
    for cell in cells:
        cell.header = cell.row < header_rows
    return Table(cells=cells, n_rows=len(rows), n_cols=n_cols, header_rows=header_rows), images


def _check_size(n_rows: int, n_cols: int, limits: LimitSettings) -> None:
    if n_rows * n_cols > limits.max_sheet_cells:
        raise TooManyCells(
            "A table of the document has more cells than allowed.",
            cells=n_rows * n_cols,
            max_cells=limits.max_sheet_cells,
        )


def cell_content(blocks: list[Block]) -> tuple[str, str, list[Image]]:
    """A cell's blocks as (text, markdown, pictures): one line a paragraph or list item (with its marker),
    one line a row of a nested table."""
    texts: list[str] = []
    mds: list[str] = []
    images: list[Image] = []
    for block in blocks:
        if isinstance(block, Image):
            images.append(block)
        elif isinstance(block, ListItem):
            marker = block.marker if block.ordered else "-"
            texts.append(f"{marker} {block.text}")
            mds.append(f"{marker} {block.md or block.text}")
        elif isinstance(block, Paragraph | Heading | Note):
            texts.append(block.text)
            mds.append(block.md or block.text)
        elif isinstance(block, Table):
            for row in block.grid():
                seen: list[Cell] = []
                for cell in row:
                    if cell is not None and all(cell is not other for other in seen):
                        seen.append(cell)
                texts.append(" ".join(cell.text for cell in seen if cell.text))
                mds.append(" ".join((cell.md or cell.text) for cell in seen if cell.text))
    return "\n".join(t for t in texts if t), "\n".join(m for m in mds if m), images
