"""List numbering of a DOCX (``word/numbering.xml``): the number Word shows before each list paragraph.

A paragraph's list is a ``w:num`` (``numId``) pointing at an ``w:abstractNum``, the definition of up to nine
levels (number format, text such as "%1." or "%1.%2", start value, when to restart). Word keeps one set of
counters per abstract definition, so numbers continue across the paragraphs between two items and across
``w:num`` instances of the same definition, except where a ``w:lvlOverride`` restarts a level
(``w:startOverride``). A level restarts after any higher level (or after the level ``w:lvlRestart`` names).

How deep an item nests (:class:`ListNesting`) is its level in its list, pushed deeper when the whole list is
indented under an item of another list: Word's "List Bullet 2" and "List Number 2" styles are one-level lists
of their own that are only indented further than "List Bullet" (720 twips against 360).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from pagemill.documents.office import numbering
from pagemill.documents.office.docx_styles import left_indent
from pagemill.documents.office.docx_xml import Element, as_int, attr, child, child_val, children, is_on

_LEVELS: Final = 9
# How much further (twips, 1/1440 inch) a list must be indented than an open item to nest under it: less
# than any indent step Word or LibreOffice offers (0.25 inch = 360, 0.5 cm = 283), more than rounding.
_NESTED_BY: Final = 120
_PLACEHOLDER: Final = re.compile(r"%([1-9])")
_ROMAN: Final = (
    (1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
    (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"),
)  # fmt: skip


@dataclass(slots=True)
class Level:
    """One level of a list definition."""

    fmt: str = "decimal"
    text: str = "%1."
    start: int = 1
    restart_after: int | None = None
    """``w:lvlRestart``: this level restarts when a level numbered below this value (1-based) appears;
    None for the default (any higher level), 0 for never."""
    legal: bool = False
    """``w:isLgl``: every level's number shown in decimal (legal numbering such as "1.1.1")."""
    indent: int | None = None
    """The left indent (twips) the level gives its paragraphs (``w:pPr/w:ind``), None when not set."""


@dataclass(slots=True)
class _Num:
    abstract_id: str
    overrides: dict[int, int] = field(default_factory=dict)
    """Level -> start value of ``w:startOverride``."""
    levels: dict[int, Level] = field(default_factory=dict)
    """Level definitions replaced by the instance (``w:lvlOverride/w:lvl``)."""


@dataclass(frozen=True, slots=True)
class Marker:
    """What Word shows before a list paragraph: ``text`` ("2.1.", "b)", "-" for a bullet)."""

    text: str
    ordered: bool


def format_number(value: int, fmt: str) -> str:
    """``value`` written in the OOXML number format ``fmt`` (unknown formats fall back to decimal)."""
    if fmt in ("lowerLetter", "upperLetter"):
        letters = numbering.repeated_letters(value) or str(value)
        return letters.upper() if fmt == "upperLetter" else letters
    if fmt in ("lowerRoman", "upperRoman"):
        roman = numbering.roman(value) or str(value)
        return roman.upper() if fmt == "upperRoman" else roman
    if fmt == "decimalZero":
        return f"{value:02d}"
    if fmt == "ordinal":
        suffix = "th" if 10 <= value % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
        return f"{value}{suffix}"
    if fmt == "none":
        return ""
    return str(value)


def _read_level(element: Element) -> tuple[int, Level]:
    restart = child_val(element, "w:lvlRestart")
    text_el = child(element, "w:lvlText")
    level = Level(
        fmt=child_val(element, "w:numFmt") or "decimal",
        text=(attr(text_el, "w:val") or "") if text_el is not None else "",
        start=as_int(child_val(element, "w:start"), 1),
        restart_after=as_int(restart) if restart is not None else None,
        legal=is_on(child(element, "w:isLgl")),
        indent=left_indent(child(element, "w:pPr")),
    )
    return as_int(attr(element, "w:ilvl")), level


class Numbering:
    """The list definitions of a document and the running counters of its lists, in reading order."""

    def __init__(self, root: Element | None, style_num: dict[str, str] | None = None) -> None:
        self._abstract: dict[str, dict[int, Level]] = {}
        self._links: dict[str, str] = {}
        self._nums: dict[str, _Num] = {}
        self._counters: dict[str, list[int | None]] = {}
        self._started: set[tuple[str, int]] = set()
        self._style_num = style_num or {}
        if root is None:
            return
        for element in children(root, "w:abstractNum"):
            abstract_id = attr(element, "w:abstractNumId") or ""
            self._abstract[abstract_id] = dict(_read_level(lvl) for lvl in children(element, "w:lvl"))
            # A definition that only points at a numbering style takes that style's list.
            link = child_val(element, "w:numStyleLink")
            if link:
                self._links[abstract_id] = link
        for element in children(root, "w:num"):
            num_id = attr(element, "w:numId") or ""
            num = _Num(child_val(element, "w:abstractNumId") or "")
            for override in children(element, "w:lvlOverride"):
                ilvl = as_int(attr(override, "w:ilvl"))
                start = child_val(override, "w:startOverride")
                if start is not None:
                    num.overrides[ilvl] = as_int(start, 1)
                lvl = child(override, "w:lvl")
                if lvl is not None:
                    num.levels[ilvl] = _read_level(lvl)[1]
            self._nums[num_id] = num

    def _abstract_of(self, num_id: str) -> str | None:
        num = self._nums.get(num_id)
        if num is None:
            return None
        abstract_id = num.abstract_id
        link = self._links.get(abstract_id)
        if link and link in self._style_num:
            target = self._nums.get(self._style_num[link])
            if target is not None and target.abstract_id in self._abstract:
                abstract_id = target.abstract_id
        return abstract_id if abstract_id in self._abstract else None

    def _level(self, num_id: str, abstract_id: str, ilvl: int) -> Level | None:
        return self._nums[num_id].levels.get(ilvl) or self._abstract[abstract_id].get(ilvl)

    def list_key(self, num_id: str) -> str | None:
        """What identifies the list of ``num_id`` (its abstract definition, which also keeps the counters);
        None for no list."""
        return None if num_id == "0" else self._abstract_of(num_id)

    def indent(self, num_id: str, ilvl: int) -> int | None:
        """The left indent (twips) level ``ilvl`` of list ``num_id`` gives its paragraphs, if it sets one."""
        abstract_id = self._abstract_of(num_id)
        if abstract_id is None:
            return None
        level = self._level(num_id, abstract_id, min(max(ilvl, 0), _LEVELS - 1))
        return level.indent if level is not None else None

    def next_marker(self, num_id: str, ilvl: int) -> Marker | None:
        """Count one paragraph of list ``num_id`` at level ``ilvl`` and return its marker; None when the
        paragraph is not a list item (``numId`` 0 removes numbering, an unknown list, a level without
        a number)."""
        abstract_id = self._abstract_of(num_id)
        if num_id == "0" or abstract_id is None:
            return None
        ilvl = min(max(ilvl, 0), _LEVELS - 1)
        level = self._level(num_id, abstract_id, ilvl)
        if level is None:
            return None  # a level the list does not define shows no number
        counters = self._counters.setdefault(abstract_id, [None] * _LEVELS)
        override = self._nums[num_id].overrides.get(ilvl)
        if override is not None and (num_id, ilvl) not in self._started:
            # The first paragraph of an instance that restarts this level.
            counters[ilvl] = override - 1
        self._started.add((num_id, ilvl))
        current = counters[ilvl]
        counters[ilvl] = level.start if current is None else current + 1
        for deeper in range(ilvl + 1, _LEVELS):
            deeper_level = self._level(num_id, abstract_id, deeper)
            restart = deeper_level.restart_after if deeper_level is not None else None
            if restart is None or (restart > 0 and ilvl < restart):
                counters[deeper] = None
        if level.fmt == "bullet":
            return Marker("-", ordered=False)
        if level.fmt == "none" and not _PLACEHOLDER.search(level.text):
            return Marker(level.text.strip(), ordered=True) if level.text.strip() else None

        def number(match: re.Match[str]) -> str:
            index = int(match.group(1)) - 1
            shown = self._level(num_id, abstract_id, index) or Level()
            value = counters[index]
            if value is None:
                # A level not used yet shows its start value (an item at level 2 right after the title).
                value = shown.start
            return format_number(value, "decimal" if level.legal else shown.fmt)

        text = _PLACEHOLDER.sub(number, level.text).strip()
        return Marker(text, ordered=True) if text else None


class ListNesting:
    """The nesting levels of one run of consecutive list items (a container's; :meth:`reset` when anything
    else comes between them).

    An item's level is its level in its own list (``w:ilvl``, so a real multilevel list nests as defined)
    plus the offset of that list in the run. The first list of a run has offset 0; a list first met while
    items of other lists are open gets the offset that puts its item one level under the deepest open item
    indented less than it by at least :data:`_NESTED_BY` (none: offset 0). The offset is never negative, so
    indentation only ever nests deeper than ``ilvl`` alone."""

    def __init__(self) -> None:
        self._open: list[tuple[int, int]] = []
        """(left indent, level) of the items still open, levels rising."""
        self._offsets: dict[str, int] = {}

    def reset(self) -> None:
        """End the run: the next item starts a new one."""
        self._open.clear()
        self._offsets.clear()

    def level(self, list_key: str, ilvl: int, indent: int) -> int:
        """The nesting level of the next item: of list ``list_key`` at level ``ilvl``, whose paragraph's
        effective left indent is ``indent`` twips."""
        ilvl = min(max(ilvl, 0), _LEVELS - 1)
        offset = self._offsets.get(list_key)
        if offset is None:
            enclosing = next((lvl for ind, lvl in reversed(self._open) if ind + _NESTED_BY <= indent), None)
            offset = max(0, enclosing + 1 - ilvl) if enclosing is not None else 0
            self._offsets[list_key] = offset
        level = min(ilvl + offset, _LEVELS - 1)
        while self._open and self._open[-1][1] >= level:
            self._open.pop()
        self._open.append((indent, level))
        return level
