"""A slide shape's text frame as blocks: paragraphs, and list items with the bullets and automatic numbers
the slide shows.

A paragraph's bullet is its own (``a:buChar``, ``a:buAutoNum``, ``a:buNone``) or, when it sets none, the
one of its level in the styles it inherits, nearest first: the shape's list style, then for a placeholder
the matching placeholder of the layout and of the master, then the master's body text style. Numbers
count per text frame and level, as PowerPoint counts them: a paragraph at an outer level restarts the
deeper levels, and a paragraph without a number at a level restarts that level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from lxml import etree

from pagemill.documents.office import numbering
from pagemill.documents.office.blocks import Block, Heading, ListItem, Paragraph
from pagemill.documents.office.drawingml_text import A_NS, paragraph_text
from pagemill.documents.office.ooxml_package import Relationship

_A: Final = f"{{{A_NS}}}"
_SCHEME: Final = re.compile(
    r"^(alphaLc|alphaUc|arabic|romanLc|romanUc)(?:Db)?(ParenBoth|ParenR|Period|Plain)$"
)
FrameKind = Literal["title", "body", "other"]
Bullet = tuple[Literal["none", "char", "number"], str, int]
"""(kind, numbering scheme, first number)"""


def text_frame_blocks(
    body: etree._Element | None,
    kind: FrameKind,
    inherited: list[etree._Element],
    rels: dict[str, Relationship],
) -> list[Block]:
    """Blocks of a text body (``p:txBody``): a title is one heading; other paragraphs are paragraphs or
    list items. ``inherited`` are the list styles the shape inherits, nearest first."""
    if body is None:
        return []
    paragraphs = list(body.iterfind(f"{_A}p"))
    if kind == "title":
        text = " ".join(" ".join(paragraph_text(p, rels)[0].split()) for p in paragraphs).strip()
        return [Heading(text, level=1)] if text else []
    styles = [style for style in (body.find(f"{_A}lstStyle"), *inherited) if style is not None]
    counters = _Counters()
    blocks: list[Block] = []
    for paragraph in paragraphs:
        text, md = paragraph_text(paragraph, rels)
        if not text.strip():
            continue
        properties = paragraph.find(f"{_A}pPr")
        level = _level(properties)
        bullet = _bullet(properties, level, styles)
        if bullet[0] == "none" and not (kind == "body" and level > 0):
            counters.restart(level)
            blocks.append(Paragraph(text.strip(), md=md.strip() if md != text else None))
            continue
        marker = counters.marker(level, bullet)
        blocks.append(
            ListItem(
                " ".join(text.split()),
                level=level,
                ordered=bullet[0] == "number",
                marker=marker,
                md=" ".join(md.split()) if md != text else None,
            )
        )
    return blocks


def _level(properties: etree._Element | None) -> int:
    if properties is None:
        return 0
    try:
        return min(max(int(properties.get("lvl", "0")), 0), 8)
    except ValueError:
        return 0


def _bullet(properties: etree._Element | None, level: int, styles: list[etree._Element]) -> Bullet:
    own = _bullet_of(properties)
    if own is not None:
        return own
    for style in styles:
        found = _bullet_of(style.find(f"{_A}lvl{level + 1}pPr"))
        if found is not None:
            return found
    return ("none", "", 1)


def _bullet_of(properties: etree._Element | None) -> Bullet | None:
    if properties is None:
        return None
    for child in properties:
        tag = child.tag
        if tag == f"{_A}buNone":
            return ("none", "", 1)
        if tag in (f"{_A}buChar", f"{_A}buBlip"):
            return ("char", "", 1)
        if tag == f"{_A}buAutoNum":
            try:
                start = max(int(child.get("startAt", "1")), 1)
            except ValueError:
                start = 1
            return ("number", child.get("type", "arabicPeriod"), start)
    return None


@dataclass(slots=True)
class _Counters:
    """The running number of each level of one text frame: (scheme, number)."""

    by_level: dict[int, tuple[str, int]] = field(default_factory=dict)

    def restart(self, level: int) -> None:
        for deeper in [lvl for lvl in self.by_level if lvl >= level]:
            del self.by_level[deeper]

    def marker(self, level: int, bullet: Bullet) -> str:
        self.restart(level + 1)
        kind, scheme, start = bullet
        if kind != "number":
            self.by_level.pop(level, None)
            return "-"
        current = self.by_level.get(level)
        number = current[1] + 1 if current is not None and current[0] == scheme else start
        self.by_level[level] = (scheme, number)
        return format_number(number, scheme)


def format_number(number: int, scheme: str) -> str:
    """``number`` as the automatic numbering ``scheme`` shows it ("arabicPeriod" 3 -> "3.",
    "alphaLcParenR" 2 -> "b)", "romanUcParenBoth" 4 -> "(IV)")."""
    match = _SCHEME.match(scheme)
    style, punctuation = match.groups() if match else ("arabic", "Period")
    if style.startswith("alpha"):
        digits = numbering.repeated_letters(number) or str(number)
    elif style.startswith("roman"):
        digits = numbering.roman(number) or str(number)
    else:
        digits = str(number)
    if style.endswith("Uc"):
        digits = digits.upper()
    if punctuation == "ParenBoth":
        return f"({digits})"
    if punctuation == "ParenR":
        return f"{digits})"
    if punctuation == "Plain":
        return digits
    return f"{digits}."
