"""OpenDocument text content as blocks: headings, paragraphs, lists numbered as the document shows them,
tables, frames (pictures, text boxes) and shapes, with links, emphasis and footnotes inline.

One :class:`TextWalker` reads one page's flow (an ODT body, a slide, a workbook's cells); it keeps the list
counters, so a list that continues an earlier one (``text:continue-numbering``, ``text:continue-list``)
goes on counting where that one stopped.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import unquote

from lxml import etree

from pagemill.documents.office.blocks import Block, Heading, Image, ListItem, Note, Paragraph, Table
from pagemill.documents.office.odf_lists import ListCounters, ListRegistry
from pagemill.documents.office.odf_styles import (
    DRAW,
    NOT_FLOW,
    NOT_FLOW_NAMESPACES,
    SVG,
    XLINK,
    OdfStyles,
    draw,
    parse_count,
    presentation,
    table,
    text,
)
from pagemill.documents.office.odf_tables import CellBudget, read_text_table, table_text

_P: Final = text("p")
_H: Final = text("h")
_LIST: Final = text("list")
_LIST_ITEM: Final = text("list-item")
_LIST_HEADER: Final = text("list-header")
_NUMBER: Final = text("number")
_SPAN: Final = text("span")
_LINK: Final = text("a")
_NOTE: Final = text("note")
_SPACE: Final = text("s")
_TAB: Final = text("tab")
_LINE_BREAK: Final = text("line-break")
_SECTION: Final = text("section")
_STYLE_NAME: Final = text("style-name")
_TABLE: Final = table("table")
_FRAME: Final = draw("frame")
_TEXT_BOX: Final = draw("text-box")
_IMAGE: Final = draw("image")
_HREF: Final = f"{{{XLINK}}}href"
# A slide's page number and date frames show a field ("<number>"), not text of the slide.
_FIELD_FRAMES: Final = frozenset({"page-number", "date-time"})
_XML_SPACE: Final = re.compile(r"[ \t\r\n]+")
_MAX_SPACES: Final = 100
_RASTER: Final = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(slots=True)
class _Run:
    """Inline content read so far: its words, their markdown, and the blocks it anchors (pictures and
    text boxes go before the paragraph, notes after it)."""

    text: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    before: list[Block] = field(default_factory=list)
    after: list[Block] = field(default_factory=list)
    at_space: bool = True

    def add(self, words: str, md: str | None = None) -> None:
        if words:
            self.text.append(words)
            self.at_space = words[-1].isspace()
        self.md.append(words if md is None else md)

    def add_xml(self, raw: str | None) -> None:
        """Character data: runs of white space are one space (ODF 6.1.2), none after a space."""
        if not raw:
            return
        words = _XML_SPACE.sub(" ", raw)
        if words.startswith(" ") and self.at_space:
            words = words[1:]
        self.add(words)

    def take(self, other: _Run, md: str) -> None:
        self.text.extend(other.text)
        self.md.append(md)
        self.before.extend(other.before)
        self.after.extend(other.after)
        self.at_space = other.at_space if other.text else self.at_space

    def result(self) -> tuple[str, str]:
        # A byte-order mark left in the text by a converted file is not a character of the text.
        words, md = "".join(self.text).replace("\ufeff", ""), "".join(self.md).replace("\ufeff", "")
        return words.strip(), md.strip()


class TextWalker:
    """Reads ODF text elements into blocks for one page."""

    def __init__(
        self, styles: OdfStyles, members: Collection[str], budget: CellBudget, *, include_hidden: bool = False
    ) -> None:
        self._styles = styles
        self._members = members
        self._budget = budget
        self._include_hidden = include_hidden
        self._lists = ListRegistry()
        self.titles: list[str] = []
        """Texts of the slide title frames read so far."""

    def blocks(self, container: etree._Element) -> list[Block]:
        """The blocks of ``container``'s children, in order."""
        out: list[Block] = []
        self._children(container, out)
        return out

    def add_block(self, element: etree._Element, out: list[Block]) -> None:
        """Append the blocks of one element (a paragraph, list, table, frame, section...) to ``out``."""
        tag = element.tag
        if not isinstance(tag, str) or tag in NOT_FLOW or tag.startswith(NOT_FLOW_NAMESPACES):
            return
        if tag == _P:
            self._paragraph(element, out)
        elif tag == _H:
            self._heading(element, out)
        elif tag == _LIST:
            self._list(element, out, 0, None, None)
        elif tag == _TABLE:
            out.extend(read_text_table(element, self.cell, self._budget))
        elif tag == _FRAME:
            out.extend(self.frame(element))
        elif tag == _SECTION and element.get(text("display")) == "none" and not self._include_hidden:
            return
        else:
            # Sections, indexes, shapes, groups, cells: their paragraphs are the text.
            self._children(element, out)

    def cell(self, element: etree._Element) -> tuple[str, str, list[Block]]:
        """A table cell's text and markdown (a line per paragraph) and the pictures and notes it holds."""
        texts, mds, side = flatten(self.blocks(element))
        return "\n".join(texts), "\n".join(mds), side

    def frame(self, element: etree._Element) -> list[Block]:
        """A ``draw:frame``: its text box, table or picture (a slide's title frame is a heading)."""
        kind = element.get(presentation("class"))
        if kind in _FIELD_FRAMES:
            return []
        box = element.find(_TEXT_BOX)
        if box is not None:
            inner = self.blocks(box)
            return self._title(inner) if kind == "title" else inner
        inner_table = element.find(_TABLE)
        if inner_table is not None:
            return read_text_table(inner_table, self.cell, self._budget)
        images = element.findall(_IMAGE)
        if images:
            return [self._image(element, images)]
        return []

    def _children(self, container: etree._Element, out: list[Block]) -> None:
        for child in container:
            self.add_block(child, out)

    def _title(self, inner: list[Block]) -> list[Block]:
        texts, mds, rest = flatten(inner)
        if not texts:
            return rest
        title, md = " ".join(texts), " ".join(mds)
        self.titles.append(title)
        return [Heading(text=title, level=1, md=md if md != title else None), *rest]

    def _heading(self, element: etree._Element, out: list[Block]) -> None:
        level = element.get(text("outline-level"))
        if level is None:
            number = self._styles.outline_level(element.get(_STYLE_NAME)) or 1
        else:
            number = min(max(parse_count(level, 1, 10), 1), 10)
        run = self._run(element)
        words, md = run.result()
        out.extend(run.before)
        if words:
            out.append(Heading(text=words, level=number, md=md if md != words else None))
        out.extend(run.after)

    def _paragraph(self, element: etree._Element, out: list[Block]) -> None:
        run = self._run(element)
        words, md = run.result()
        out.extend(run.before)
        if words:
            out.append(Paragraph(text=words, md=md if md != words else None))
        out.extend(run.after)

    def _list(
        self,
        element: etree._Element,
        out: list[Block],
        depth: int,
        list_style: str | None,
        counters: ListCounters | None,
    ) -> None:
        list_style = element.get(_STYLE_NAME) or list_style
        if counters is None:
            list_style = list_style or self._paragraph_list_style(element)
            counters = self._lists.counters_for(element, list_style)
        for item in element:
            if item.tag == _LIST_ITEM:
                self._list_item(item, out, depth, list_style, counters)
            elif item.tag == _LIST_HEADER:
                # A list header is an unnumbered item: its paragraphs as they are.
                self._children(item, out)

    def _list_item(
        self,
        item: etree._Element,
        out: list[Block],
        depth: int,
        list_style: str | None,
        counters: ListCounters,
    ) -> None:
        first = next((child for child in item if child.tag in (_P, _H, _LIST)), None)
        numbered = first is not None and first.tag != _LIST
        marker: str | None = None
        if numbered:
            start = item.get(text("start-value"))
            marker = counters.advance(
                self._styles, list_style, depth + 1, parse_count(start) if start is not None else None
            )
            shown = item.find(_NUMBER)
            if marker is not None and shown is not None and (shown.text or "").strip():
                marker = (shown.text or "").strip()
        current: ListItem | None = None
        for child in item:
            if child.tag == _P:
                run = self._run(child)
                words, md = run.result()
                out.extend(run.before)
                if words and current is None and numbered:
                    current = ListItem(
                        text=words,
                        level=depth,
                        ordered=marker is not None,
                        marker=marker or "-",
                        md=md if md != words else None,
                    )
                    out.append(current)
                elif words and current is not None:
                    # A further paragraph of the same item continues it.
                    current.md = f"{current.md or current.text} {md}"
                    current.text = f"{current.text} {words}"
                    if current.md == current.text:
                        current.md = None
                elif words:
                    out.append(Paragraph(text=words, md=md if md != words else None))
                out.extend(run.after)
            elif child.tag == _LIST:
                self._list(child, out, depth + 1, list_style, counters)
            else:
                self.add_block(child, out)

    def _paragraph_list_style(self, element: etree._Element) -> str | None:
        """The list style of a list without one: the one its first paragraph's style attaches."""
        first = next(element.iter(_P, _H), None)
        return self._styles.paragraph_list_style(first.get(_STYLE_NAME)) if first is not None else None

    def _run(self, element: etree._Element) -> _Run:
        run = _Run()
        self._inline(element, run)
        return run

    def _inline(self, element: etree._Element, run: _Run) -> None:
        run.add_xml(element.text)
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in NOT_FLOW or tag.startswith(NOT_FLOW_NAMESPACES):
                pass
            elif tag == _SPACE:
                run.add(" " * min(max(parse_count(child.get(text("c"))), 1), _MAX_SPACES))
            elif tag == _TAB:
                run.add("\t")
            elif tag == _LINE_BREAK:
                run.add("\n")
            elif tag in (_SPAN, _LINK):
                self._wrapped(child, run)
            elif tag == _NOTE:
                self._note(child, run)
            elif tag == _FRAME:
                run.before.extend(self.frame(child))
            elif tag.startswith(f"{{{DRAW}}}"):
                # A shape or group anchored in the paragraph: its own text, before the paragraph.
                run.before.extend(self.blocks(child))
            else:
                # Fields, bookmarks' content, ruby base, meta: their text is part of the line.
                self._inline(child, run)
            run.add_xml(child.tail)

    def _wrapped(self, element: etree._Element, run: _Run) -> None:
        """A span (bold/italic in markdown) or a link ([text](url) in markdown)."""
        inner = _Run(at_space=run.at_space)
        self._inline(element, inner)
        md = "".join(inner.md)
        core = md.strip()
        if core:
            lead, trail = md[: len(md) - len(md.lstrip())], md[len(md.rstrip()) :]
            if element.tag == _LINK:
                href = (element.get(_HREF) or "").strip()
                if href and not href.startswith("#"):
                    core = f"[{core}]({href.replace(' ', '%20').replace(')', '%29')})"
            else:
                bold, italic = self._styles.emphasis(element.get(_STYLE_NAME))
                mark = ("**" if bold else "") + ("*" if italic else "")
                core = f"{mark}{core}{mark[::-1]}"
            md = lead + core + trail
        run.take(inner, md)

    def _note(self, element: etree._Element, run: _Run) -> None:
        citation = element.find(text("note-citation"))
        label = ""
        if citation is not None:
            label = (citation.get(text("label")) or "".join(citation.itertext())).strip()
        body = element.find(text("note-body"))
        texts, mds, side = flatten(self.blocks(body) if body is not None else [])
        note_text, note_md = " ".join(texts), " ".join(mds)
        kind: Literal["footnote", "endnote"] = (
            "endnote" if element.get(text("note-class")) == "endnote" else "footnote"
        )
        label = label or str(sum(isinstance(block, Note) for block in run.after) + 1)
        run.add("", f"[^{label}]")
        run.after.append(
            Note(text=note_text, kind=kind, label=label, md=note_md if note_md != note_text else None)
        )
        run.after.extend(side)

    def _image(self, frame: etree._Element, images: list[etree._Element]) -> Image:
        """A picture frame: the first of its pictures a picture reader can decode (a frame holds an SVG
        and its PNG fallback, or an object and its replacement image), else the first in the package."""
        refs = [ref for ref in (self._member(image.get(_HREF)) for image in images) if ref]
        raster = [ref for ref in refs if ref.lower().endswith(_RASTER)]
        ref = (raster or refs)[0] if refs else None
        title = _child_text(frame, f"{{{SVG}}}title")
        desc = _child_text(frame, f"{{{SVG}}}desc")
        alt = f"{title}: {desc}" if title and desc and title != desc else (desc or title)
        return Image(ref=ref, alt=alt, name=frame.get(draw("name")))

    def _member(self, href: str | None) -> str | None:
        """The package member a picture link names (None for a picture linked outside the file)."""
        if not href or "://" in href or href.startswith("/"):
            return None
        name = unquote(href)
        while name.startswith("./"):
            name = name[2:]
        return name if name in self._members else None


def flatten(blocks: list[Block]) -> tuple[list[str], list[str], list[Block]]:
    """Blocks read as one piece of text (a cell, a title, a note): a text and a markdown line per
    paragraph, heading and list item (with its marker) and nested table; the pictures and notes apart."""
    texts: list[str] = []
    mds: list[str] = []
    side: list[Block] = []
    for block in blocks:
        if isinstance(block, Heading | Paragraph):
            texts.append(block.text)
            mds.append(block.md or block.text)
        elif isinstance(block, ListItem):
            marker = block.marker if block.ordered else "-"
            texts.append(f"{marker} {block.text}")
            mds.append(f"{marker} {block.md or block.text}")
        elif isinstance(block, Table):
            nested = table_text(block)
            texts.append(nested)
            mds.append(nested)
        else:
            side.append(block)
    return texts, mds, side


def _child_text(element: etree._Element, tag: str) -> str:
    child = element.find(tag)
    return " ".join("".join(child.itertext()).split()) if child is not None else ""
