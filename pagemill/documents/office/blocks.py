"""The structure every office reader produces: pages of blocks, in reading order.

Readers (one module per format in this package) turn a file into an :class:`OfficeDocument`; this module
turns its pages into markdown, plain text and the JSON blocks of a page result
(:mod:`pagemill.documents.office.render`). Inline formatting (links, emphasis) is carried as markdown in
``md`` beside the plain ``text`` of the same words, so renderers never parse markup back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PageKind = Literal["document", "slide", "sheet", "chapter", "message"]


@dataclass(slots=True)
class Heading:
    """A heading of ``level`` 1 (a title) to 6."""

    text: str
    level: int = 1
    md: str | None = None
    type: Literal["heading"] = "heading"


@dataclass(slots=True)
class Paragraph:
    """A paragraph of running text (also a slide's text box, a quote, a caption)."""

    text: str
    md: str | None = None
    type: Literal["paragraph"] = "paragraph"


@dataclass(slots=True)
class ListItem:
    """One item of a list at nesting ``level`` (0 = outermost). ``marker`` is the document's own numbering
    of an ordered item ("3.", "b)", "iv.", "2.1") or "-" for a bullet."""

    text: str
    level: int = 0
    ordered: bool = False
    marker: str = "-"
    md: str | None = None
    type: Literal["list_item"] = "list_item"


@dataclass(slots=True)
class Cell:
    """A table cell at its top-left grid position; ``row_span``/``col_span`` > 1 for merged cells (the
    positions it covers have no cell of their own)."""

    text: str
    row: int
    col: int
    row_span: int = 1
    col_span: int = 1
    md: str | None = None
    header: bool = False


@dataclass(slots=True)
class Table:
    """A table of ``n_rows`` x ``n_cols`` grid positions; the first ``header_rows`` rows are its header."""

    cells: list[Cell]
    n_rows: int
    n_cols: int
    header_rows: int = 1
    caption: str | None = None
    type: Literal["table"] = "table"

    def grid(self) -> list[list[Cell | None]]:
        """Rows of the grid with each position's cell: a merged cell appears at every position it covers
        (``None`` where no cell lies)."""
        rows: list[list[Cell | None]] = [[None] * self.n_cols for _ in range(self.n_rows)]
        for cell in self.cells:
            for r in range(cell.row, min(cell.row + cell.row_span, self.n_rows)):
                for c in range(cell.col, min(cell.col + cell.col_span, self.n_cols)):
                    rows[r][c] = cell
        return rows


@dataclass(slots=True)
class Image:
    """A picture in the document. ``ref`` names its bytes for :meth:`OfficeDocument.image_bytes` (None when
    they are not in the file, a linked picture); ``text`` is what OCR read in it, once read."""

    ref: str | None = None
    alt: str = ""
    name: str | None = None
    text: str | None = None
    type: Literal["image"] = "image"


@dataclass(slots=True)
class Note:
    """Text attached to a page rather than part of its flow: a slide's speaker notes, a footnote or
    endnote (``label`` is its number), a comment."""

    text: str
    kind: Literal["speaker_notes", "footnote", "endnote", "comment"] = "speaker_notes"
    label: str | None = None
    md: str | None = None
    type: Literal["note"] = "note"


@dataclass(slots=True)
class Code:
    """Preformatted text (an HTML ``<pre>``, a code style), kept verbatim."""

    text: str
    type: Literal["code"] = "code"


@dataclass(slots=True)
class Attachment:
    """A file attached to an e-mail (listed; its text follows as blocks when converted)."""

    name: str
    media_type: str | None = None
    size: int | None = None
    type: Literal["attachment"] = "attachment"


Block = Heading | Paragraph | ListItem | Table | Image | Note | Code | Attachment


@dataclass(slots=True)
class OfficePage:
    """One page of an office document: a slide, a sheet, a whole word-processing document, an EPUB
    chapter or an e-mail message."""

    kind: PageKind
    blocks: list[Block] = field(default_factory=list)
    title: str | None = None
    """The sheet's name, the chapter's or slide's title, the message's subject."""
    hidden: bool = False
    """A hidden sheet or slide (read only when the job asks for hidden content)."""

    def images(self) -> list[Image]:
        """The page's pictures whose bytes are in the file, in order."""
        return [block for block in self.blocks if isinstance(block, Image) and block.ref is not None]


def block_dict(block: Block) -> dict[str, Any]:
    """A block's JSON shape: its ``type`` first, then its fields without the None ones (cells listed with
    their positions and spans)."""
    if isinstance(block, Table):
        return {
            "type": "table",
            "n_rows": block.n_rows,
            "n_cols": block.n_cols,
            "header_rows": block.header_rows,
            "caption": block.caption,
            "cells": [
                {
                    "row": cell.row,
                    "col": cell.col,
                    "row_span": cell.row_span,
                    "col_span": cell.col_span,
                    "text": cell.text,
                    "header": cell.header,
                }
                for cell in block.cells
            ],
        }
    body = {name: getattr(block, name) for name in block.__slots__ if name not in ("type", "md")}
    return {"type": block.type, **{k: v for k, v in body.items() if v is not None}}
