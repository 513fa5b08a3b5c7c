"""The PPTX reader: each slide is a page of its shapes' blocks in reading order, then its speaker notes.

The package is read part by part through the checked archive (no library loads the whole package, so a
large video in the deck is never read): the presentation lists the slides, each slide's relationships
name its layout (whose placeholders give positions and bullets the slide inherits), pictures, charts and
notes. A slide's title is its title placeholder's text; hidden slides (``show="0"``) are pages flagged
``hidden``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip, open_archive
from pagemill.documents.office.blocks import Block, Heading, Note, OfficePage
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.ooxml_package import R_NS, main_part, part_loader, part_rels
from pagemill.documents.office.pptx_shapes import (
    P_NS,
    SlideContext,
    layout_and_master,
    notes_text,
    shape_tree_blocks,
)
from pagemill.errors import CorruptFile, TooManyPages
from pagemill.settings import LimitSettings

_P: Final = f"{{{P_NS}}}"


def read_pptx(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read a PowerPoint presentation: one page (kind "slide") per slide, hidden slides flagged."""
    with open_archive(path, limits) as package:
        presentation = main_part(package, "ppt/presentation.xml")
        slide_parts = _slide_parts(package, presentation)
        if len(slide_parts) > limits.max_pages:
            raise TooManyPages(pages=len(slide_parts), max_pages=limits.max_pages)
        parts: dict[str, etree._Element | None] = {}
        pages = [_read_slide(package, part, options, parts) for part in slide_parts]
    return OfficeDocument(pages=pages, reader="pptx", image_loader=part_loader(path, limits))


def _slide_parts(package: SafeZip, presentation: str) -> list[str]:
    """The slides' parts in presentation order (a listed slide whose part is missing is left out)."""
    root = package.xml(presentation)
    if etree.QName(root).localname != "presentation":
        raise CorruptFile("The presentation part is not a presentation.", reason="main_part")
    rels = part_rels(package, presentation)
    slides = []
    for slide_id in root.iterfind(f"{_P}sldIdLst/{_P}sldId"):
        rel = rels.get(slide_id.get(f"{{{R_NS}}}id", ""))
        if rel is not None and rel.part is not None and package.has(rel.part):
            slides.append(rel.part)
    return slides


def _read_slide(
    package: SafeZip, part: str, options: ReadOptions, shared: dict[str, etree._Element | None]
) -> OfficePage:
    root = package.xml(part)
    rels = part_rels(package, part)
    layout, master = layout_and_master(package, rels)
    context = SlideContext(
        package=package,
        rels=rels,
        layout=_shared_part(package, layout, shared),
        master=_shared_part(package, master, shared),
    )
    tree = root.find(f"{_P}cSld/{_P}spTree")
    blocks: list[Block] = shape_tree_blocks(tree, context) if tree is not None else []
    title = next((block.text for block in blocks if isinstance(block, Heading)), None)
    if options.speaker_notes:
        notes = next((r.part for r in rels.values() if r.is_type("/notesSlide") and r.part), None)
        if notes is not None and package.has(notes):
            text = notes_text(package, notes)
            if text:
                blocks.append(Note(text, kind="speaker_notes"))
    hidden = root.get("show", "1").lower() in ("0", "false")
    return OfficePage(kind="slide", blocks=blocks, title=title, hidden=hidden)


def _shared_part(
    package: SafeZip, part: str | None, shared: dict[str, etree._Element | None]
) -> etree._Element | None:
    """A layout or master, parsed once for all the slides that use it; a damaged one is ignored (the
    slide loses inherited positions and bullets, not its text)."""
    if part is None:
        return None
    if part not in shared:
        try:
            shared[part] = package.xml(part)
        except CorruptFile:
            shared[part] = None
    return shared[part]
