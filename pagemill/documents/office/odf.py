"""OpenDocument readers: ODT (one page of kind "document"), ODP (a page of kind "slide" per ``draw:page``)
and ODS (a page of kind "sheet" per ``table:table``).

The package is opened through :func:`open_archive` (bomb and trap checks) and its XML parsed by lxml with
entities, DTDs and the network off; ``styles.xml`` gives the named list and paragraph styles, the
automatic styles of ``content.xml`` the rest. Text content becomes blocks in
:mod:`pagemill.documents.office.odf_text`, tables in :mod:`pagemill.documents.office.odf_tables`, and a
workbook's sheets are streamed by :mod:`pagemill.documents.office.odf_sheets`. Pictures are package members
(``Pictures/...``), loaded by name when a job reads them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

from lxml import etree

from pagemill.documents.office.archive import SafeZip, open_archive
from pagemill.documents.office.blocks import Block, Note, OfficePage
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.odf_sheets import read_sheets
from pagemill.documents.office.odf_styles import OdfStyles, draw, office, presentation
from pagemill.documents.office.odf_tables import CellBudget
from pagemill.documents.office.odf_text import TextWalker, flatten
from pagemill.errors import CorruptFile, TooManyPages
from pagemill.settings import LimitSettings

_CONTENT: Final = "content.xml"
_STYLES: Final = "styles.xml"
_PAGE: Final = draw("page")
_FRAME: Final = draw("frame")
_TEXT_BOX: Final = draw("text-box")
_NOTES: Final = presentation("notes")

_T = TypeVar("_T")


def read_odt(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """An ODT text document as one page of kind "document"."""
    with open_archive(path, limits) as archive:
        content = _xml(archive, _CONTENT)
        styles = _styles(archive, content)
        members = frozenset(archive.names)
    body = _body(content, "text")
    walker = TextWalker(styles, members, CellBudget(limits.max_sheet_cells), include_hidden=options.hidden)
    blocks = _guarded(lambda: walker.blocks(body))
    page = OfficePage(kind="document", blocks=blocks)
    return OfficeDocument(pages=[page], reader="odt", image_loader=_image_loader(path, limits))


def read_odp(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """An ODP presentation: a page of kind "slide" per slide, titled by its title frame, with its speaker
    notes when ``options.speaker_notes``; hidden slides flagged."""
    with open_archive(path, limits) as archive:
        content = _xml(archive, _CONTENT)
        styles = _styles(archive, content)
        members = frozenset(archive.names)
    body = _body(content, "presentation")
    slides = list(body.iterchildren(_PAGE))
    if len(slides) > limits.max_pages:
        raise TooManyPages(pages=len(slides), max_pages=limits.max_pages)
    pages: list[OfficePage] = []
    budget = CellBudget(limits.max_sheet_cells)
    for slide in slides:
        walker = TextWalker(styles, members, budget, include_hidden=options.hidden)
        pages.append(_guarded(partial(_slide, slide, walker, styles, options)))
    return OfficeDocument(pages=pages, reader="odp", image_loader=_image_loader(path, limits))


def read_ods(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """An ODS workbook: a page of kind "sheet" per sheet (hidden ones flagged), each a heading with the
    sheet's name and the tables of its used cells."""
    with open_archive(path, limits) as archive:
        styles = _styles(archive, None)
        pages = _guarded(lambda: read_sheets(archive, styles, options, limits))
    return OfficeDocument(pages=pages, reader="ods", image_loader=_image_loader(path, limits))


def _slide(slide: etree._Element, walker: TextWalker, styles: OdfStyles, options: ReadOptions) -> OfficePage:
    blocks: list[Block] = []
    notes: etree._Element | None = None
    for child in slide:
        if child.tag == _NOTES:
            notes = child
        else:
            walker.add_block(child, blocks)
    if options.speaker_notes and notes is not None:
        note = _speaker_notes(notes, walker)
        if note is not None:
            blocks.append(note)
    hidden = slide.get(presentation("visibility")) == "hidden" or styles.hidden(
        "drawing-page", slide.get(draw("style-name"))
    )
    title = walker.titles[0] if walker.titles else None
    return OfficePage(kind="slide", blocks=blocks, title=title, hidden=hidden)


def _speaker_notes(notes: etree._Element, walker: TextWalker) -> Note | None:
    """The text of the notes page's text frames (its slide thumbnail skipped)."""
    texts: list[str] = []
    mds: list[str] = []
    for frame in notes.iter(_FRAME):
        box = frame.find(_TEXT_BOX)
        if box is not None:
            words, marked, _ = flatten(walker.blocks(box))
            texts.extend(words)
            mds.extend(marked)
    if not texts:
        return None
    text, md = "\n".join(texts), "\n".join(mds)
    return Note(text=text, kind="speaker_notes", md=md if md != text else None)


def _styles(archive: SafeZip, content: etree._Element | None) -> OdfStyles:
    """Styles of ``styles.xml`` (when present), then the automatic styles of ``content``."""
    styles = OdfStyles()
    if archive.has(_STYLES):
        common = _xml(archive, _STYLES)
        styles.add(common.find(office("styles")))
        styles.add(common.find(office("automatic-styles")))
    if content is not None:
        styles.add(content.find(office("automatic-styles")))
    return styles


def _xml(archive: SafeZip, name: str) -> etree._Element:
    """A member parsed; a deflate stream that does not inflate is a damaged part (SafeZip lets
    ``zlib.error`` through)."""
    try:
        return archive.xml(name)
    except zlib.error as exc:
        raise CorruptFile("A part of the document is damaged.", part=name) from exc


def _body(content: etree._Element, kind: str) -> etree._Element:
    """``office:body/office:<kind>`` of ``content.xml``; CorruptFile when the content holds no such body."""
    if content.tag != office("document-content"):
        raise CorruptFile("The document's content is not an OpenDocument.", part=_CONTENT)
    body = content.find(f"{office('body')}/{office(kind)}")
    if body is None:
        raise CorruptFile(f"The document has no {kind} body.", part=_CONTENT)
    return body


def _guarded(read: Callable[[], _T]) -> _T:
    """Run a reading step; elements nested deeper than Python recurses are a damaged file, not a crash."""
    try:
        return read()
    except RecursionError:
        raise CorruptFile("The document is nested too deeply.", reason="depth") from None


def _image_loader(path: Path, limits: LimitSettings) -> Callable[[str], bytes]:
    """Pictures are read on demand from the package (re-opened and checked: the reader's zip is closed)."""

    def load(ref: str) -> bytes:
        with open_archive(path, limits) as archive:
            try:
                return archive.read(ref)
            except zlib.error as exc:
                raise CorruptFile("A picture of the document is damaged.", picture=ref) from exc

    return load
