"""A DOCX paragraph's inline content: its runs as text and markdown, and what hangs in it (pictures, the
content of text boxes).

What Word shows is what is read: inserted text yes, deleted text no, hidden (``w:vanish``) text no; of a
field (``w:fldChar``), its shown result and not its instruction (a caption's number, a cross-reference), a
HYPERLINK field becoming a link; of ``mc:AlternateContent``, one branch (the Fallback repeats the Choice).
Equations (OMML) are kept inline: their text, and LaTeX in the markdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Protocol

from pagemill.documents.office.blocks import Block, Image
from pagemill.documents.office.docx_math import omml_latex, omml_text
from pagemill.documents.office.docx_styles import Styles
from pagemill.documents.office.docx_xml import (
    Element,
    Relationship,
    alternate_choice,
    attr,
    child,
    child_val,
    is_on,
    key,
)

# Containers whose children are read as if they were the paragraph's own.
_TRANSPARENT: Final = frozenset({"w:ins", "w:moveTo", "w:smartTag", "w:customXml", "w:bdo", "w:dir"})
_BREAKS: Final = {"w:tab": "\t", "w:ptab": "\t", "w:br": "\n", "w:cr": "\n", "w:noBreakHyphen": "-"}
_NOTE_REFERENCES: Final = {"w:footnoteReference": "footnote", "w:endnoteReference": "endnote"}
_MD_ESCAPES: Final = re.compile(r"([\\`*_\[\]])")
# Word fills in alt text it made up itself (an image caption model); it is not the author's description.
_GENERATED_ALT: Final = re.compile(r"description automatically generated|ai-generated content", re.I)
_FIELD_TOKENS: Final = re.compile(r'\\[A-Za-z]\s*(?:"[^"]*"|[^\s"\\]+)?|"[^"]*"|\S+')


class PartReader(Protocol):
    """What inline reading needs from the document reader: the part's links and styles, note labels,
    pictures and the blocks inside a text box."""

    rels: dict[str, Relationship]
    styles: Styles

    def note_label(self, kind: str, note_id: str) -> str | None:
        """The shown label of a referenced note (numbered on first reference), None if it is missing."""
        ...

    def picture(self, rel_id: str | None, linked: bool, alt: str, name: str | None) -> Image:
        """An Image block for the picture stored under relationship ``rel_id``."""
        ...

    def box_blocks(self, content: Element) -> list[Block]:
        """The blocks of a text box's ``w:txbxContent``."""
        ...


@dataclass(slots=True)
class Segment:
    """A stretch of text with one formatting; ``md`` replaces the escaped text in markdown when set
    (a note reference, an equation)."""

    text: str
    bold: bool = False
    italic: bool = False
    link: str | None = None
    md: str | None = None


@dataclass(slots=True)
class Inline:
    """A paragraph's text in segments, and the pictures and text-box blocks found in it, in order."""

    segments: list[Segment] = field(default_factory=list)
    extras: list[Block] = field(default_factory=list)

    def text(self) -> str:
        """The plain text."""
        return "".join(segment.text for segment in self.segments).strip()

    def markdown(self) -> str:
        """The text with links, emphasis, note references and equations as markdown."""
        out: list[str] = []
        pending: list[Segment] = []

        def flush() -> None:
            if pending:
                first = pending[0]
                out.append(_format("".join(s.text for s in pending), first.bold, first.italic, first.link))
                pending.clear()

        for segment in self.segments:
            if segment.md is not None:
                flush()
                out.append(segment.md)
                continue
            if pending and (pending[0].bold, pending[0].italic, pending[0].link) != (
                segment.bold,
                segment.italic,
                segment.link,
            ):
                flush()
            pending.append(segment)
        flush()
        return "".join(out).strip().replace("\n", "  \n")


def _format(text: str, bold: bool, italic: bool, link: str | None) -> str:
    body = _MD_ESCAPES.sub(r"\\\1", text)
    stripped = body.strip()
    if not stripped:
        return body
    lead, trail = body[: len(body) - len(body.lstrip())], body[len(body.rstrip()) :]
    if bold or italic:
        mark = ("**" if bold else "") + ("*" if italic else "")
        stripped = f"{mark}{stripped}{mark[::-1]}"
    if link:
        stripped = f"[{stripped}]({link.replace(' ', '%20').replace(')', '%29')})"
    return f"{lead}{stripped}{trail}"


@dataclass(slots=True)
class _Field:
    instruction: list[str] = field(default_factory=list)
    showing: bool = False
    link: str | None = None


@dataclass(frozen=True, slots=True)
class _Style:
    bold: bool = False
    italic: bool = False
    link: str | None = None


class _InlineWalker:
    def __init__(self, part: PartReader) -> None:
        self.part = part
        self.result = Inline()
        self.fields: list[_Field] = []

    def visible(self) -> bool:
        return all(f.showing for f in self.fields)

    def field_link(self) -> str | None:
        return next((f.link for f in reversed(self.fields) if f.link), None)

    def add(self, text: str, style: _Style, md: str | None = None) -> None:
        if text and self.visible():
            link = self.field_link() or style.link
            self.result.segments.append(Segment(text, style.bold, style.italic, link, md))

    def content(self, element: Element, style: _Style) -> None:
        """Children of a paragraph or of an inline container."""
        for item in element:
            name = key(item)
            if name == "w:r":
                self.run(item, style)
            elif name in _TRANSPARENT:
                self.content(item, style)
            elif name == "w:hyperlink":
                rel = self.part.rels.get(attr(item, "r:id") or "")
                url = rel.target if rel is not None and rel.external else None
                self.content(item, _Style(style.bold, style.italic, url or style.link))
            elif name == "w:fldSimple":
                self.fields.append(_Field(showing=True, link=_hyperlink_target(attr(item, "w:instr") or "")))
                self.content(item, style)
                self.fields.pop()
            elif name == "w:sdt":
                sdt_content = child(item, "w:sdtContent")
                if sdt_content is not None:
                    self.content(sdt_content, style)
            elif name == "mc:AlternateContent":
                branch = alternate_choice(item)
                if branch is not None:
                    self.content(branch, style)
            elif name in ("m:oMath", "m:oMathPara"):
                self.math(item, style)

    def math(self, element: Element, style: _Style) -> None:
        display = key(element) == "m:oMathPara"
        text = omml_text(element)
        latex = omml_latex(element).strip()
        if text.strip():
            self.add(text, style, f"$${latex}$$" if display else f"${latex}$")

    def run(self, run: Element, style: _Style) -> None:
        rpr = child(run, "w:rPr")
        if rpr is not None:
            if is_on(child(rpr, "w:vanish")):
                return
            bold, italic = self.part.styles.emphasis(child_val(rpr, "w:rStyle"))
            b_el, i_el = child(rpr, "w:b"), child(rpr, "w:i")
            style = _Style(
                is_on(b_el) if b_el is not None else bold,
                is_on(i_el) if i_el is not None else italic,
                style.link,
            )
        for item in run:
            name = key(item)
            if name == "w:t":
                self.add(item.text or "", style)
            elif name in _BREAKS:
                self.add(_BREAKS[name], style)
            elif name == "w:sym":
                self.add(_symbol(attr(item, "w:char")), style)
            elif name == "w:fldChar":
                self.field_char(attr(item, "w:fldCharType"))
            elif name == "w:instrText" and self.fields and not self.fields[-1].showing:
                self.fields[-1].instruction.append(item.text or "")
            elif name in _NOTE_REFERENCES:
                label = self.part.note_label(_NOTE_REFERENCES[name], attr(item, "w:id") or "")
                if label is not None:
                    self.add(f"[{label}]", style, f"[^{label}]")
            elif name in ("w:drawing", "w:pict", "w:object"):
                if self.visible():
                    self.graphic(item, {})
            elif name == "mc:AlternateContent":
                branch = alternate_choice(item)
                if branch is not None:
                    self.run(branch, style)
            elif name == "w:ruby":
                base = child(item, "w:rubyBase")
                if base is not None:
                    self.content(base, style)

    def field_char(self, kind: str | None) -> None:
        if kind == "begin":
            self.fields.append(_Field())
        elif kind == "separate" and self.fields:
            current = self.fields[-1]
            current.showing = True
            current.link = _hyperlink_target("".join(current.instruction))
        elif kind == "end" and self.fields:
            self.fields.pop()

    def graphic(self, element: Element, names: dict[str, str]) -> None:
        """Pictures and text boxes of a drawing, VML shape or embedded object, in order; the alt text and
        name come from the nearest description before the picture (``wp:docPr``, ``pic:cNvPr``)."""
        for item in element:
            name = key(item)
            if name == "mc:AlternateContent":
                branch = alternate_choice(item)
                if branch is not None:
                    self.graphic(branch, names)
            elif name == "w:txbxContent":
                self.result.extras.extend(self.part.box_blocks(item))
            elif name in ("wp:docPr", "pic:cNvPr"):
                # The picture's own description wins over its drawing's; the drawing's name (what Word's
                # selection pane shows) over the picture's file name.
                described = _description(item)
                names = {**names, "alt": described} if described else names
                if item.get("name") and "name" not in names:
                    names = {**names, "name": item.get("name") or ""}
            elif name == "v:shape":
                described = _description(item)
                self.graphic(item, {**names, "alt": described} if described else names)
            elif name == "a:blip":
                embedded = attr(item, "r:embed")
                rel_id = embedded or attr(item, "r:link")
                self.result.extras.append(
                    self.part.picture(rel_id, not embedded, names.get("alt", ""), names.get("name"))
                )
            elif name == "v:imagedata":
                rel_id = attr(item, "r:id")
                self.result.extras.append(
                    self.part.picture(rel_id, False, names.get("alt", ""), names.get("name"))
                )
            elif not name.startswith("w:") or name in ("w:pict", "w:object"):
                self.graphic(item, names)


def _description(element: Element) -> str:
    text = (element.get("descr") or element.get("alt") or element.get("title") or "").strip()
    return "" if _GENERATED_ALT.search(text) else text


def _symbol(code: str | None) -> str:
    """A ``w:sym`` character; symbol-font characters (private use area F000-F0FF) have no Unicode meaning
    of their own and are dropped."""
    try:
        value = int(code or "", 16)
    except ValueError:
        return ""
    return "" if 0xE000 <= value <= 0xF8FF or value < 0x20 else chr(value)


def _hyperlink_target(instruction: str) -> str | None:
    """The URL of a ``HYPERLINK "url"`` field (None for other fields and for ``\\l`` bookmarks)."""
    tokens = _FIELD_TOKENS.findall(instruction.strip())
    if not tokens or tokens[0].upper() != "HYPERLINK":
        return None
    for token in tokens[1:]:
        if token.startswith("\\"):
            if token[1:2] == "l":
                return None
            continue
        return token.strip('"') or None
    return None


def read_inline(paragraph: Element, part: PartReader) -> Inline:
    """The inline content of a ``w:p`` (or of any element holding runs)."""
    walker = _InlineWalker(part)
    walker.content(paragraph, _Style())
    return walker.result
