"""DOCX (Word) documents: the whole document as one page of blocks, in reading order.

Page breaks saved in the file are where Word last laid the text out, not a property of the document, so the
document is one page (kind "document"). The body is read from its WordprocessingML directly (Transitional
and Strict OOXML alike, see :mod:`.docx_xml`) rather than through python-docx, which reads neither Strict
files nor the content of text boxes: paragraphs and tables in order, with the content of content controls
(``w:sdt``) and text boxes (after the paragraph that anchors them); headings from paragraph styles and
outline levels; list items with the number Word shows, nested by their list level and by how far their list is
indented under another (:mod:`.docx_numbering`); tables with merged cells
(:mod:`.docx_tables`); pictures as Image blocks whose ``ref`` is the zip member holding their bytes; and
the referenced footnotes and endnotes as Note blocks at the end.

Heading levels: a "Title" paragraph is level 1. When the document has one, "Heading N" is level N + 1
(docling's mapping, under which word_sample.docx's reference was written); without a title, "Heading 1" is
level 1, so documents that start at "Heading 1" keep a top-level heading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pagemill.documents.office.archive import SafeZip, open_archive
from pagemill.documents.office.blocks import Block, Heading, Image, ListItem, Note, OfficePage, Paragraph
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.docx_inline import read_inline
from pagemill.documents.office.docx_numbering import ListNesting, Numbering, format_number
from pagemill.documents.office.docx_styles import TITLE, ListRef, Styles, left_indent, paragraph_outline
from pagemill.documents.office.docx_tables import cell_content, read_table
from pagemill.documents.office.docx_xml import (
    Element,
    Relationship,
    alternate_choice,
    as_int,
    attr,
    child,
    child_val,
    descendants,
    key,
    related_part,
    relationships,
)
from pagemill.errors import CorruptFile
from pagemill.settings import LimitSettings

_DEFAULT_MAIN: Final = "word/document.xml"
# Deeper than any real document nests text boxes and tables in one another.
_MAX_DEPTH: Final = 32
_CONTAINERS: Final = frozenset({"w:customXml", "w:ins", "w:moveTo", "w:smartTag"})
_NOTE_SKIPPED_TYPES: Final = frozenset({"separator", "continuationSeparator", "continuationNotice"})


def read_docx(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read the DOCX at ``path`` into one page of blocks (reader "docx"). CorruptFile for a damaged zip or
    a missing or broken main part, ArchiveBomb for a bomb (zip or XML entities), TooManyCells for a table
    over ``limits.max_sheet_cells``."""
    with open_archive(path, limits) as archive:
        reader = _DocxReader(archive, limits)
        blocks = reader.body()
        title = _core_title(archive)
    page = OfficePage(kind="document", blocks=blocks, title=title)

    def load(ref: str) -> bytes:
        with open_archive(path, limits) as again:
            return again.read(ref)

    return OfficeDocument(pages=[page], reader="docx", image_loader=load)


class _DocxReader:
    """Reads one document's body; also the :class:`.docx_inline.PartReader` of its paragraphs."""

    def __init__(self, archive: SafeZip, limits: LimitSettings) -> None:
        self.archive = archive
        self.limits = limits
        self.main = related_part(relationships(archive, ""), "officeDocument") or _DEFAULT_MAIN
        root = archive.xml(self.main)
        self.body_element = child(root, "w:body")
        if key(root) != "w:document" or self.body_element is None:
            raise CorruptFile("The document's main part is not a Word document.", reason="main_part")
        self.main_rels = relationships(archive, self.main)
        self.rels: dict[str, Relationship] = self.main_rels
        self.styles = Styles(self._related_xml("styles"))
        self.numbering = Numbering(self._related_xml("numbering"), self.styles.numbering_styles())
        self.depth = 0
        self.has_title = any(
            self.styles.heading(attr(item, "w:val"), None) == TITLE
            for item in descendants(self.body_element, "w:pStyle")
        )
        self.notes: dict[str, dict[str, Element]] = {
            "footnote": self._notes("footnotes", "w:footnote"),
            "endnote": self._notes("endnotes", "w:endnote"),
        }
        self.note_parts = {
            kind: related_part(self.main_rels, f"{kind}s") or "" for kind in ("footnote", "endnote")
        }
        self.note_formats = self._note_formats()
        self.note_labels: dict[tuple[str, str], str] = {}
        self.note_order: list[tuple[str, str]] = []

    # -- parts -----------------------------------------------------------------------------------------

    def _related_xml(self, type_suffix: str) -> Element | None:
        part = related_part(self.main_rels, type_suffix)
        return self.archive.xml(part) if part and self.archive.has(part) else None

    def _notes(self, type_suffix: str, name: str) -> dict[str, Element]:
        root = self._related_xml(type_suffix)
        if root is None:
            return {}
        return {
            attr(item, "w:id") or "": item
            for item in root
            if key(item) == name and attr(item, "w:type") not in _NOTE_SKIPPED_TYPES
        }

    def _note_formats(self) -> dict[str, str]:
        """Number formats of footnote and endnote marks: the last section's, else the settings', else
        Word's defaults (1, 2, 3 and i, ii, iii)."""
        formats = {"footnote": "decimal", "endnote": "lowerRoman"}
        settings = self._related_xml("settings")
        section = child(self.body_element, "w:sectPr")
        for source in (settings, section):
            for kind in formats:
                value = child_val(child(source, f"w:{kind}Pr"), "w:numFmt")
                formats[kind] = value or formats[kind]
        return formats

    # -- blocks ----------------------------------------------------------------------------------------

    def body(self) -> list[Block]:
        """The body's blocks, then the notes it references."""
        assert self.body_element is not None
        blocks = self.blocks(self.body_element)
        blocks.extend(self._note_blocks())
        return blocks

    def blocks(self, container: Element, nesting: ListNesting | None = None) -> list[Block]:
        """Blocks of a body-like element (the body, a cell, a text box, a note, a content control);
        ``nesting`` is the list run of the enclosing container when ``container`` only wraps part of its
        flow (a content control, a tracked insertion), None for a container of its own."""
        nesting = ListNesting() if nesting is None else nesting
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise CorruptFile("The document nests tables or text boxes too deeply.", reason="depth")
            out: list[Block] = []
            for item in container:
                name = key(item)
                if name == "w:p":
                    out.extend(self._paragraph(item, nesting))
                elif name == "w:tbl":
                    table, images = read_table(item, self.blocks, self.limits)
                    out.extend([table] if table is not None else [])
                    out.extend(images)
                    nesting.reset()
                elif name == "w:sdt":
                    content = child(item, "w:sdtContent")
                    out.extend(self.blocks(content, nesting) if content is not None else [])
                elif name in _CONTAINERS:
                    out.extend(self.blocks(item, nesting))
                elif name == "mc:AlternateContent":
                    branch = alternate_choice(item)
                    out.extend(self.blocks(branch, nesting) if branch is not None else [])
            return out
        finally:
            self.depth -= 1

    def box_blocks(self, content: Element) -> list[Block]:
        """The blocks of a text box."""
        return self.blocks(content)

    def _paragraph(self, paragraph: Element, nesting: ListNesting) -> list[Block]:
        ppr = child(paragraph, "w:pPr")
        style_id = child_val(ppr, "w:pStyle")
        inline = read_inline(paragraph, self)
        text = inline.text()
        md = inline.markdown()
        md_or_none = md if md != text else None
        level = self.styles.heading(style_id, paragraph_outline(ppr))
        list_ref = self._list_ref(ppr, style_id)
        marker = self.numbering.next_marker(list_ref.num_id, list_ref.ilvl) if list_ref else None
        out: list[Block] = []
        if text and level is not None:
            if marker is not None and marker.ordered:
                text, md = f"{marker.text} {text}", f"{marker.text} {md}"
                md_or_none = md if md != text else None
            out.append(Heading(text, self._heading_level(level), md_or_none))
        elif text and marker is not None and list_ref is not None:
            list_key = self.numbering.list_key(list_ref.num_id) or list_ref.num_id
            indent = self._indent(ppr, style_id, list_ref)
            depth = nesting.level(list_key, list_ref.ilvl, indent)
            out.append(ListItem(text, depth, marker.ordered, marker.text, md_or_none))
        elif text:
            out.append(Paragraph(text, md_or_none))
        if out and not isinstance(out[0], ListItem):
            nesting.reset()  # a heading or a paragraph between list items ends their run
        out.extend(inline.extras)
        return out

    def _indent(self, ppr: Element | None, style_id: str | None, list_ref: ListRef) -> int:
        """A list paragraph's effective left indent (twips): its own ``w:ind``; else, for numbering set on
        the paragraph, the list level's indent before its style's; for numbering from its style, the
        indent of that style (or a style nearer the paragraph) before the list level's, which it
        overrides, then the rest of the chain's."""
        own = left_indent(ppr)
        if own is not None:
            return own
        from_list = self.numbering.indent(list_ref.num_id, list_ref.ilvl)
        if child(ppr, "w:numPr") is None:
            near = self.styles.indent(style_id, up_to_numbering=True)
            if near is not None:
                return near
        if from_list is not None:
            return from_list
        return self.styles.indent(style_id) or 0

    def _list_ref(self, ppr: Element | None, style_id: str | None) -> ListRef | None:
        """The paragraph's own ``w:numPr``, completed by its style's (a style can give the list and the
        paragraph only its level)."""
        from_style = self.styles.list_ref(style_id)
        numpr = child(ppr, "w:numPr")
        if numpr is None:
            return from_style
        num_id = child_val(numpr, "w:numId") or (from_style.num_id if from_style else None)
        ilvl = child_val(numpr, "w:ilvl")
        if num_id is None:
            return None
        return ListRef(num_id, as_int(ilvl) if ilvl is not None else (from_style.ilvl if from_style else 0))

    def _heading_level(self, level: int) -> int:
        if level == TITLE:
            return 1
        return min(level + 1 if self.has_title else level, 6)

    # -- notes and pictures (PartReader) ---------------------------------------------------------------

    def note_label(self, kind: str, note_id: str) -> str | None:
        """The label of a referenced note, numbered in order of first reference."""
        if note_id not in self.notes.get(kind, {}):
            return None
        found = self.note_labels.get((kind, note_id))
        if found is None:
            number = 1 + sum(1 for other, _ in self.note_order if other == kind)
            found = format_number(number, self.note_formats[kind])
            if kind == "endnote" and self.note_formats["endnote"] == self.note_formats["footnote"]:
                found = f"e{found}"  # markdown footnote labels must not collide
            self.note_labels[(kind, note_id)] = found
            self.note_order.append((kind, note_id))
        return found

    def _note_blocks(self) -> list[Block]:
        notes: list[Block] = []
        note_rels = {
            kind: relationships(self.archive, part) if part else {} for kind, part in self.note_parts.items()
        }
        index = 0
        # A note may reference another note: the order list can grow while it is read.
        while index < len(self.note_order):
            kind, note_id = self.note_order[index]
            index += 1
            self.rels = note_rels[kind]
            text, md, _ = cell_content(self.blocks(self.notes[kind][note_id]))
            if text:
                notes.append(
                    Note(
                        text,
                        kind="footnote" if kind == "footnote" else "endnote",
                        label=self.note_labels[(kind, note_id)],
                        md=md if md != text else None,
                    )
                )
        self.rels = self.main_rels
        return notes

    def picture(self, rel_id: str | None, linked: bool, alt: str, name: str | None) -> Image:
        """An Image for the relationship ``rel_id``: ``ref`` is the zip member of an embedded picture,
        None for a linked one (or one whose part is missing)."""
        rel = self.rels.get(rel_id or "")
        ref = None
        if rel is not None and not rel.external and not linked and self.archive.has(rel.target):
            ref = rel.target
        return Image(ref=ref, alt=alt, name=name)


def _core_title(archive: SafeZip) -> str | None:
    """The document's title from its properties (``docProps/core.xml`` ``dc:title``)."""
    part = related_part(relationships(archive, ""), "core-properties") or "docProps/core.xml"
    if not archive.has(part):
        return None
    try:
        root = archive.xml(part)
    except CorruptFile:
        return None  # broken metadata does not stop the document from being read
    for item in root:
        if isinstance(item.tag, str) and item.tag.endswith("}title"):
            return (item.text or "").strip() or None
    return None
