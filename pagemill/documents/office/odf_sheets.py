"""The sheets of an ODS workbook, streamed from ``content.xml``.

A workbook's content can be far larger than its used cells (a sheet's trailing row repeated a million
times, a hundred thousand formatted rows), so it is parsed as a stream: each row is placed on its sheet's
grid when it ends and then dropped from the tree, and the cells its content covers are counted against
``limits.max_sheet_cells`` before they are expanded. Sheets are pages of kind "sheet": a level-2 heading
with the sheet's name, then a table per block of used cells (split at fully empty rows and columns).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterable
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.blocks import Block, Heading, OfficePage
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.odf_styles import OdfStyles, office, table, text
from pagemill.documents.office.odf_tables import CellBudget, GridBuilder, cached_value, formula_text
from pagemill.documents.office.odf_text import TextWalker
from pagemill.errors import ArchiveBomb, CorruptFile, TooManyPages
from pagemill.settings import LimitSettings

_CHUNK: Final = 64 * 1024
_CONTENT: Final = "content.xml"
_DOCUMENT: Final = office("document-content")
_AUTOMATIC_STYLES: Final = office("automatic-styles")
_SPREADSHEET: Final = office("spreadsheet")
_TABLE: Final = table("table")
_ROW: Final = table("table-row")
_SHAPES: Final = table("shapes")
_HEADER_ROWS: Final = table("table-header-rows")
_FORMULA: Final = table("formula")
_P: Final = text("p")
_XML_SPACE: Final = re.compile(r"[ \t\r\n]+")


def read_sheets(
    archive: SafeZip, styles: OdfStyles, options: ReadOptions, limits: LimitSettings
) -> list[OfficePage]:
    """Every sheet of the workbook as a page (hidden ones flagged)."""
    reader = _SheetStream(styles, archive.names, options, limits)
    # Events for the elements handled only: a cell's and a paragraph's events would cost more than the
    # rest of reading them.
    parser = etree.XMLPullParser(
        events=("start", "end"),
        tag=(_AUTOMATIC_STYLES, _SPREADSHEET, _TABLE, _ROW, _SHAPES),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        with archive.open(_CONTENT) as stream:
            tail = b""
            while chunk := stream.read(_CHUNK):
                # Entities are refused wherever they are declared (the parser would not expand them
                # either); the tail of the last chunk catches a declaration split between two.
                if b"<!ENTITY" in tail + chunk[:16] or b"<!ENTITY" in chunk:
                    raise ArchiveBomb(
                        "A part of the document declares XML entities, which are refused.", part=_CONTENT
                    )
                tail = chunk[-16:]
                parser.feed(chunk)
                reader.handle(parser.read_events())
        parser.close()
        reader.handle(parser.read_events())
    except etree.XMLSyntaxError as exc:
        raise CorruptFile("A part of the document is not well-formed XML.", part=_CONTENT) from exc
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise CorruptFile("A part of the document is damaged.", part=_CONTENT) from exc
    if not reader.seen_body:
        raise CorruptFile("The document has no spreadsheet body.", part=_CONTENT)
    return reader.pages


class _SheetStream:
    """Handles the parse events of ``content.xml``: styles, then each sheet's rows as they end."""

    def __init__(
        self, styles: OdfStyles, members: list[str], options: ReadOptions, limits: LimitSettings
    ) -> None:
        self._styles = styles
        self._options = options
        self._limits = limits
        self._budget = CellBudget(limits.max_sheet_cells)
        self._walker = TextWalker(styles, frozenset(members), self._budget, include_hidden=options.hidden)
        self._sheet: etree._Element | None = None
        self._grid = GridBuilder(self._budget)
        self._images: list[Block] = []
        self.seen_body = False
        self.pages: list[OfficePage] = []

    def handle(self, events: Iterable[tuple[str, etree._Element]]) -> None:
        for event, element in events:
            if event == "start":
                self._start(element)
            else:
                self._end(element)

    def _start(self, element: etree._Element) -> None:
        if element.tag == _SPREADSHEET:
            body = element.getparent()
            root = body.getparent() if body is not None else None
            self.seen_body = root is not None and root.tag == _DOCUMENT
        elif element.tag == _TABLE and self._sheet is None and _parent_tag(element) == _SPREADSHEET:
            if len(self.pages) >= self._limits.max_pages:
                raise TooManyPages(pages=len(self.pages) + 1, max_pages=self._limits.max_pages)
            self._sheet = element
            self._grid = GridBuilder(self._budget)
            self._images = []

    def _end(self, element: etree._Element) -> None:
        tag = element.tag
        if self._sheet is None:
            if tag == _AUTOMATIC_STYLES and _parent_tag(element) == _DOCUMENT:
                self._styles.add(element)
                element.clear()
            return
        if tag == _ROW and _owning_table(element) is self._sheet:
            self._grid.add_row(element, self._cell, header=_parent_tag(element) == _HEADER_ROWS)
            _drop(element)
        elif tag == _SHAPES and element.getparent() is self._sheet:
            self._images.extend(self._walker.blocks(element))
            _drop(element)
        elif element is self._sheet:
            self._finish(element)

    def _finish(self, sheet: etree._Element) -> None:
        name = sheet.get(table("name")) or f"Sheet{len(self.pages) + 1}"
        hidden = self._styles.hidden("table", sheet.get(table("style-name")))
        blocks: list[Block] = [Heading(text=name, level=2)]
        blocks.extend(self._grid.sheet_tables())
        blocks.extend(self._images)
        blocks.extend(self._grid.side)
        self.pages.append(OfficePage(kind="sheet", blocks=blocks, title=name, hidden=hidden))
        self._sheet = None
        self._grid = GridBuilder(self._budget)
        _drop(sheet)

    def _cell(self, cell: etree._Element) -> tuple[str, str, list[Block]]:
        """A cell as displayed (the text LibreOffice wrote for it, else its stored value), or its formula
        when the job asks for formulas."""
        formula = cell.get(_FORMULA)
        if self._options.formulas and formula:
            shown = formula_text(formula)
            return shown, shown, []
        if len(cell) == 0:
            value = cached_value(cell)
            return value, value, []
        plain = _plain_text(cell)
        side: list[Block] = []
        if plain is not None:
            words = md = plain
        else:
            words, md, side = self._walker.cell(cell)
        if words:
            return words, md, side
        value = cached_value(cell)
        return value, value, side


def _plain_text(cell: etree._Element) -> str | None:
    """The text of a cell that is one paragraph of plain characters, as most cells are (read without
    the walker, which a sheet of a million cells would feel); None for any other cell."""
    if len(cell) != 1:
        return None
    paragraph = cell[0]
    if paragraph.tag != _P or len(paragraph):
        return None
    return _XML_SPACE.sub(" ", paragraph.text or "").strip()


def _parent_tag(element: etree._Element) -> str | None:
    parent = element.getparent()
    return parent.tag if parent is not None else None


def _owning_table(element: etree._Element) -> etree._Element | None:
    parent = element.getparent()
    while parent is not None and parent.tag != _TABLE:
        parent = parent.getparent()
    return parent


def _drop(element: etree._Element) -> None:
    """Free a handled element and the handled siblings before it (a sheet's rows stay few in memory)."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]
