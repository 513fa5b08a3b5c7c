"""An office page as markdown, plain text and JSON blocks.

Markdown follows what readers of converted documents expect (and what docling writes): ``#`` headings, ``-``
bullets and the document's own numbers for ordered items, nested by four spaces a level, pipe tables with
a merged cell's text in every position it covers (or HTML tables with ``rowspan``/``colspan``: option
``table_format``, markdown, html or auto), ``<!-- image -->`` for a picture, followed by the text OCR
read in it.
"""

from __future__ import annotations

import html
import re
from typing import Any

from pagemill.documents.office.blocks import (
    Attachment,
    Block,
    Code,
    Heading,
    Image,
    ListItem,
    Note,
    OfficePage,
    Paragraph,
    Table,
    block_dict,
)

_INDENT = "    "
_NOTE_HEADINGS = {
    "speaker_notes": "Notes",
    "footnote": "Footnotes",
    "endnote": "Endnotes",
    "comment": "Comments",
}
_PIPE_CELL_ESCAPES = re.compile(r"([|\\])")


def page_markdown(page: OfficePage, table_format: str = "markdown") -> str:
    """The page as markdown (blocks separated by a blank line; a list's items by a newline)."""
    parts: list[str] = []
    previous: Block | None = None
    notes: dict[str, list[Note]] = {}
    for block in page.blocks:
        if isinstance(block, Note):
            notes.setdefault(block.kind, []).append(block)
            continue
        text = _block_markdown(block, table_format)
        if text is None:
            continue
        joined = isinstance(block, ListItem | Attachment) and isinstance(previous, type(block))
        parts.append(("\n" if joined else "\n\n") + text if parts else text)
        previous = block
    for kind, items in notes.items():
        body = "\n".join(_note_markdown(note) for note in items)
        parts.append(("\n\n" if parts else "") + f"**{_NOTE_HEADINGS[kind]}:**\n\n{body}")
    return "".join(parts)


def page_text(page: OfficePage) -> str:
    """The page as plain text: one block a paragraph, table rows as tab-separated cells."""
    parts: list[str] = []
    for block in page.blocks:
        text = _block_text(block)
        if text:
            parts.append(text)
    return "\n\n".join(parts)


def page_blocks(page: OfficePage) -> list[dict[str, Any]]:
    """The page's blocks in their JSON shape, in reading order."""
    return [block_dict(block) for block in page.blocks]


def _block_markdown(block: Block, table_format: str) -> str | None:
    if isinstance(block, Heading):
        level = min(max(block.level, 1), 6)
        return f"{'#' * level} {_one_line(block.md or block.text)}"
    if isinstance(block, Paragraph):
        return block.md or block.text or None
    if isinstance(block, ListItem):
        marker = block.marker if block.ordered else "-"
        return f"{_INDENT * max(block.level, 0)}{marker} {_one_line(block.md or block.text)}"
    if isinstance(block, Table):
        if table_format == "html" or (table_format == "auto" and _needs_html(block)):
            return table_html(block)
        return table_markdown(block)
    if isinstance(block, Image):
        lines = ["<!-- image -->"]
        if block.alt:
            lines.append(block.alt)
        if block.text:
            lines.append(block.text)
        return "\n\n".join(lines)
    if isinstance(block, Code):
        fence = "````" if "```" in block.text else "```"
        return f"{fence}\n{block.text}\n{fence}"
    if isinstance(block, Attachment):
        return f"- Attachment: {block.name}" + (f" ({block.media_type})" if block.media_type else "")
    return None


def _note_markdown(note: Note) -> str:
    body = note.md or note.text
    return f"[^{note.label}]: {body}" if note.label else body


def _block_text(block: Block) -> str:
    if isinstance(block, Heading | Paragraph | Note | Code):
        return block.text
    if isinstance(block, ListItem):
        marker = block.marker if block.ordered else "-"
        return f"{'  ' * block.level}{marker} {block.text}"
    if isinstance(block, Table):
        return "\n".join("\t".join(cell.text if cell else "" for cell in row) for row in block.grid())
    if isinstance(block, Image):
        return "\n".join(part for part in (block.alt, block.text) if part)
    if isinstance(block, Attachment):
        return f"Attachment: {block.name}"
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _needs_html(table: Table) -> bool:
    """Markdown cannot hold merged cells or cells of several paragraphs."""
    return any(cell.row_span > 1 or cell.col_span > 1 or "\n" in cell.text for cell in table.cells)


def _pipe_cell(cell_text: str) -> str:
    return _PIPE_CELL_ESCAPES.sub(r"\\\1", " ".join(cell_text.split()))


def table_markdown(table: Table) -> str:
    """A pipe table; a table without header rows gets its first row as the header (markdown needs one)."""
    grid = table.grid()
    if not grid or table.n_cols == 0:
        return ""
    rows = [
        "| " + " | ".join(_pipe_cell((cell.md or cell.text) if cell else "") for cell in row) + " |"
        for row in grid
    ]
    separator = "| " + " | ".join("-" for _ in range(table.n_cols)) + " |"
    # Markdown holds one header row: further header rows follow the separator as body rows.
    return "\n".join([rows[0], separator, *rows[1:]])


def table_html(table: Table) -> str:
    """An HTML table with ``rowspan``/``colspan``; header rows' cells are ``<th>``."""
    by_row: dict[int, list[Any]] = {}
    for cell in sorted(table.cells, key=lambda c: (c.row, c.col)):
        by_row.setdefault(cell.row, []).append(cell)
    lines = ["<table>"]
    if table.caption:
        lines.append(f"<caption>{html.escape(table.caption)}</caption>")
    for row in range(table.n_rows):
        cells = []
        for cell in by_row.get(row, []):
            tag = "th" if cell.header or row < table.header_rows else "td"
            spans = ""
            if cell.row_span > 1:
                spans += f' rowspan="{cell.row_span}"'
            if cell.col_span > 1:
                spans += f' colspan="{cell.col_span}"'
            text = html.escape(cell.text).replace("\n", "<br>")
            cells.append(f"<{tag}{spans}>{text}</{tag}>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)
