"""The styles of a DOCX (``word/styles.xml``) as far as the reader needs them: which paragraph styles are
headings or the title, which carry list numbering and how far they indent, which character styles are bold or
italic.

Styles inherit through ``w:basedOn``; every question walks that chain (at most a few dozen styles deep, and
safe against a chain that loops back on itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pagemill.documents.office.docx_xml import Element, as_int, attr, child, child_val, children, is_on

_HEADING_NAME: Final = re.compile(r"heading\s*([1-9])")
_MAX_CHAIN: Final = 64
TITLE: Final = 0
"""The heading level :meth:`Styles.heading` gives a Title paragraph (resolved to a markdown level later)."""


@dataclass(slots=True)
class _Style:
    name: str
    based_on: str | None
    outline_level: int | None
    num_id: str | None
    ilvl: int | None
    indent: int | None
    bold: bool | None
    italic: bool | None


@dataclass(frozen=True, slots=True)
class ListRef:
    """A paragraph's list: ``num_id`` in numbering.xml at level ``ilvl``."""

    num_id: str
    ilvl: int


class Styles:
    """The styles of one document (an empty set when the file has no styles part)."""

    def __init__(self, root: Element | None) -> None:
        self._styles: dict[str, _Style] = {}
        self.default_paragraph: str | None = None
        if root is None:
            return
        for element in children(root, "w:style"):
            style_id = attr(element, "w:styleId")
            if not style_id:
                continue
            ppr, rpr = child(element, "w:pPr"), child(element, "w:rPr")
            numpr = child(ppr, "w:numPr")
            ilvl = child_val(numpr, "w:ilvl")
            outline = child_val(ppr, "w:outlineLvl")
            b_el, i_el = child(rpr, "w:b"), child(rpr, "w:i")
            self._styles[style_id] = _Style(
                name=(child_val(element, "w:name") or style_id).strip().lower(),
                based_on=child_val(element, "w:basedOn"),
                outline_level=as_int(outline) if outline is not None else None,
                num_id=child_val(numpr, "w:numId"),
                ilvl=as_int(ilvl) if ilvl is not None else None,
                indent=left_indent(ppr),
                bold=is_on(b_el) if b_el is not None else None,
                italic=is_on(i_el) if i_el is not None else None,
            )
            if attr(element, "w:type") == "paragraph" and is_on_default(element):
                self.default_paragraph = style_id

    def _chain(self, style_id: str | None) -> list[_Style]:
        chain: list[_Style] = []
        seen: set[str] = set()
        while style_id and style_id not in seen and len(chain) < _MAX_CHAIN:
            seen.add(style_id)
            style = self._styles.get(style_id)
            if style is None:
                break
            chain.append(style)
            style_id = style.based_on
        return chain

    def heading(self, style_id: str | None, direct_outline: int | None) -> int | None:
        """The heading level of a paragraph (:data:`TITLE` for a title, 1-9 for "Heading N" or an outline
        level), None for body text. The style's name decides first (Word's own built-in headings), then an
        outline level set on the paragraph or in its style chain."""
        if direct_outline is not None:
            return direct_outline + 1 if 0 <= direct_outline <= 8 else None
        chain = self._chain(style_id or self.default_paragraph)
        for style in chain:
            names = (style.name, style.name.replace(" ", ""))
            if "title" in names:
                return TITLE
            match = next((m for n in names if (m := _HEADING_NAME.fullmatch(n))), None)
            if match:
                return int(match.group(1))
            if style.outline_level is not None:
                return style.outline_level + 1 if 0 <= style.outline_level <= 8 else None
        return None

    def list_ref(self, style_id: str | None) -> ListRef | None:
        """The numbering a paragraph style gives its paragraphs (a "List Number" style), if any."""
        for style in self._chain(style_id or self.default_paragraph):
            if style.num_id is not None:
                return ListRef(style.num_id, style.ilvl or 0)
        return None

    def indent(self, style_id: str | None, up_to_numbering: bool = False) -> int | None:
        """The left indent (twips) a paragraph style gives its paragraphs, the nearest setting in its chain;
        with ``up_to_numbering``, only a setting in the style that carries the numbering or one nearer the
        paragraph (those override the numbering level's indent; one further up the chain does not)."""
        for style in self._chain(style_id or self.default_paragraph):
            if style.indent is not None:
                return style.indent
            if up_to_numbering and style.num_id is not None:
                return None
        return None

    def numbering_styles(self) -> dict[str, str]:
        """Style id -> ``numId`` of every style that carries numbering (for ``w:numStyleLink``)."""
        return {style_id: style.num_id for style_id, style in self._styles.items() if style.num_id}

    def emphasis(self, style_id: str | None) -> tuple[bool, bool]:
        """(bold, italic) of a character style, through its chain (the nearest setting wins)."""
        bold: bool | None = None
        italic: bool | None = None
        for style in self._chain(style_id):
            bold = style.bold if bold is None else bold
            italic = style.italic if italic is None else italic
        return bool(bold), bool(italic)


def is_on_default(element: Element) -> bool:
    """True for the style marked as its type's default (``w:default="1"``)."""
    return attr(element, "w:default") in ("1", "true", "on")


def left_indent(ppr: Element | None) -> int | None:
    """The left indent (twips) set in a paragraph's or a list level's properties (``w:ind`` ``w:left``, or
    ``w:start`` as Strict files and right-to-left aware writers call it); None when not set."""
    ind = child(ppr, "w:ind")
    value = attr(ind, "w:left")
    value = attr(ind, "w:start") if value is None else value
    if value is None:
        return None
    try:
        return round(float(value))  # some writers save fractional twips
    except (ValueError, OverflowError):  # not a number, "nan", "inf"
        return None


def paragraph_outline(ppr: Element | None) -> int | None:
    """The outline level set directly on a paragraph (``w:outlineLvl``; 9 means body text)."""
    value = child_val(ppr, "w:outlineLvl")
    return as_int(value, 9) if value is not None else None
