"""List numbering of OpenDocument text: each list's counters by level, numbers formatted as the list
style says (1, a/A, i/I, with prefix, suffix and the upper levels shown), and lists that continue an
earlier one (``text:continue-numbering="true"``: the last list of the same style; ``text:continue-list``:
the list with that id) sharing its counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from pagemill.documents.office import numbering
from pagemill.documents.office.odf_styles import XML, OdfStyles, text


@dataclass(slots=True)
class ListCounters:
    """The counters of one list, by level (1-based), as its items are numbered."""

    values: dict[int, int] = field(default_factory=dict)

    def advance(self, styles: OdfStyles, list_style: str | None, level: int, start: int | None) -> str | None:
        """Count an item at ``level``; its marker ("3.", "b)", "2.1.") or None for a bullet."""
        spec = styles.list_level(list_style, level)
        value = start if start is not None else self.values.get(level, spec.start - 1) + 1
        self.values[level] = value
        for deeper in [key for key in self.values if key > level]:
            del self.values[deeper]
        if not spec.numbered:
            return None
        parts = []
        for upper in range(max(1, level - spec.display_levels + 1), level + 1):
            upper_spec = styles.list_level(list_style, upper) if upper != level else spec
            shown = format_number(
                self.values.get(upper, upper_spec.start),
                upper_spec.num_format if upper_spec.numbered else "1",
                upper_spec.letter_sync,
            )
            if shown:
                parts.append(shown)
        if not parts:
            return None
        number = ".".join(parts)
        marker = spec.prefix + number + spec.suffix
        # Markdown needs a delimiter after the number to see an ordered item.
        return marker if marker != number else number + "."


class ListRegistry:
    """The lists of one page's flow, by id and by list style, for lists that continue them."""

    def __init__(self) -> None:
        self._by_id: dict[str, ListCounters] = {}
        self._last_by_style: dict[str | None, ListCounters] = {}

    def counters_for(self, element: etree._Element, list_style: str | None) -> ListCounters:
        """The counters of a top-level ``text:list``: those of the list it continues, or new ones."""
        continued = element.get(text("continue-list"))
        counters: ListCounters | None = None
        if continued:
            counters = self._by_id.get(continued)
        if counters is None and element.get(text("continue-numbering")) == "true":
            counters = self._last_by_style.get(list_style)
        if counters is None:
            counters = ListCounters()
        list_id = element.get(f"{{{XML}}}id") or element.get(text("id"))
        if list_id:
            self._by_id[list_id] = counters
        self._last_by_style[list_style] = counters
        return counters


def format_number(value: int, num_format: str, letter_sync: bool = False) -> str:
    """``value`` as the list style shows it: 1, a/A (a..z, aa..), i/I; '' for an empty format."""
    if num_format == "":
        return ""
    # Repeated letters grow with the number: past 100,000 (a 3,847-letter marker) decimal says more.
    if num_format in ("a", "A") and value <= 100_000:
        spell = numbering.repeated_letters if letter_sync else numbering.column_letters
        letters = spell(value) or str(value)
        return letters.upper() if num_format == "A" else letters
    if num_format in ("i", "I"):
        roman = numbering.roman(value) or str(value)
        return roman.upper() if num_format == "I" else roman
    return str(value)
