"""The numbers of HTML ordered lists: ``start``, ``type`` (1, a, A, i, I), ``reversed`` and ``li value``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lxml import etree

from pagemill.documents.office import numbering
from pagemill.documents.office.html_parse import local_name

_INT: Final = re.compile(r"\s*([+-]?\d{1,9})")


@dataclass(slots=True)
class ListContext:
    """An open ``ul``/``ol``: whether it numbers its items, how, and the next number."""

    ordered: bool
    style: str = "1"
    next: int = 1
    step: int = 1

    def marker(self, item: etree._Element) -> str:
        """The marker of the list's next item ``item`` ("-" for bullets); advances the count."""
        if not self.ordered:
            return "-"
        value = parse_int(item.get("value"))
        if value is not None:
            self.next = value
        number = self.next
        self.next += self.step
        return f"{format_number(number, self.style)}."


def open_list(element: etree._Element) -> ListContext:
    """The context of a list element (``ol`` numbers; ``ul``, ``menu``, ``dir`` do not)."""
    if local_name(element) != "ol":
        return ListContext(ordered=False)
    style = (element.get("type") or "1").strip()
    if style not in ("1", "a", "A", "i", "I"):
        style = "1"
    backwards = element.get("reversed") is not None
    start = parse_int(element.get("start"))
    if start is None:
        # A reversed list counts down from its number of items.
        start = sum(1 for child in element if local_name(child) == "li") if backwards else 1
    return ListContext(ordered=True, style=style, next=start, step=-1 if backwards else 1)


def parse_int(value: str | None) -> int | None:
    """An integer attribute as browsers read it (leading digits), or None."""
    match = _INT.match(value or "")
    return int(match.group(1)) if match else None


def format_number(number: int, style: str) -> str:
    """``number`` in list style ``style``: 1, a (a..z, aa..), A, i (roman), I; decimal when the style
    cannot show it (zero, negatives, roman past 3999)."""
    if style in ("a", "A"):
        letters = numbering.column_letters(number) or str(number)
        return letters.upper() if style == "A" else letters
    if style in ("i", "I"):
        roman = numbering.roman(number) or str(number)
        return roman.upper() if style == "I" else roman
    return str(number)
