"""OpenDocument names and styles: the XML namespaces, list styles (how a list level is numbered) and the few
style properties the readers need (a paragraph style's outline level and list style, a text style's
emphasis, a hidden sheet or slide).

Styles come from ``styles.xml`` (common styles) and the ``office:automatic-styles`` of ``content.xml``;
automatic styles are added last so they win when a name is in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lxml import etree

OFFICE: Final = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
STYLE: Final = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
TEXT: Final = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE: Final = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
DRAW: Final = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
FO: Final = "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
XLINK: Final = "http://www.w3.org/1999/xlink"
SVG: Final = "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"
PRESENTATION: Final = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
XML: Final = "http://www.w3.org/XML/1998/namespace"


def office(local: str) -> str:
    """The Clark name ``{office-namespace}local``."""
    return f"{{{OFFICE}}}{local}"


def style(local: str) -> str:
    """The Clark name of a ``style:`` element or attribute."""
    return f"{{{STYLE}}}{local}"


def text(local: str) -> str:
    """The Clark name of a ``text:`` element or attribute."""
    return f"{{{TEXT}}}{local}"


def table(local: str) -> str:
    """The Clark name of a ``table:`` element or attribute."""
    return f"{{{TABLE}}}{local}"


def draw(local: str) -> str:
    """The Clark name of a ``draw:`` element or attribute."""
    return f"{{{DRAW}}}{local}"


def presentation(local: str) -> str:
    """The Clark name of a ``presentation:`` element or attribute."""
    return f"{{{PRESENTATION}}}{local}"


# Elements with no text of the flow: comments, form controls, tracked deletions, declarations, the number
# LibreOffice may cache for a list item or heading, a shape's geometry, a slide's notes (read apart).
NOT_FLOW: Final = frozenset(
    [
        office("annotation"),
        office("annotation-end"),
        office("forms"),
        office("event-listeners"),
        office("binary-data"),
        text("tracked-changes"),
        text("soft-page-break"),
        text("sequence-decls"),
        text("variable-decls"),
        text("user-field-decls"),
        text("dde-connection-decls"),
        text("ruby-text"),
        text("note-citation"),
        text("number"),
        draw("enhanced-geometry"),
        draw("page-thumbnail"),
        draw("glue-point"),
        presentation("notes"),
        f"{{{SVG}}}title",
        f"{{{SVG}}}desc",
    ]
)
# Animations and scripts: namespaces whose elements hold no text.
NOT_FLOW_NAMESPACES: Final = (
    "{urn:oasis:names:tc:opendocument:xmlns:animation:1.0}",
    "{urn:oasis:names:tc:opendocument:xmlns:smil-compatible:1.0}",
    "{urn:oasis:names:tc:opendocument:xmlns:script:1.0}",
)
_LIST_STYLE: Final = text("list-style")
_LEVEL_NUMBER: Final = text("list-level-style-number")
_STYLE: Final = style("style")
_MAX_NUMBER: Final = 10**9
# Parent chains longer than this are cycles or hostile; real documents nest a handful of styles.
_MAX_PARENTS: Final = 32


@dataclass(frozen=True, slots=True)
class ListLevel:
    """How one level of a list style marks its items: a bullet, or a number in ``num_format`` (1, a, A,
    i, I) between ``prefix`` and ``suffix``, counting from ``start`` and showing ``display_levels`` levels
    ("2.1." shows two)."""

    numbered: bool = False
    num_format: str = "1"
    prefix: str = ""
    suffix: str = ""
    start: int = 1
    display_levels: int = 1
    letter_sync: bool = False


_BULLET: Final = ListLevel()


@dataclass(frozen=True, slots=True)
class _StyleInfo:
    parent: str | None
    list_style: str | None
    outline_level: int | None
    bold: bool | None
    italic: bool | None
    hidden: bool


class OdfStyles:
    """The list styles and named styles of one document."""

    def __init__(self) -> None:
        self._lists: dict[str, dict[int, ListLevel]] = {}
        self._styles: dict[tuple[str, str], _StyleInfo] = {}

    def add(self, container: etree._Element | None) -> None:
        """Add the styles of an ``office:styles`` or ``office:automatic-styles`` element."""
        if container is None:
            return
        for child in container:
            if child.tag == _LIST_STYLE:
                name = child.get(style("name"))
                if name:
                    self._lists[name] = _list_levels(child)
            elif child.tag == _STYLE:
                name, family = child.get(style("name")), child.get(style("family"))
                if name and family:
                    self._styles[(family, name)] = _style_info(child)

    def list_level(self, list_style: str | None, level: int) -> ListLevel:
        """Level ``level`` (1-based) of the list style; a bullet when the style or level is unknown."""
        levels = self._lists.get(list_style or "")
        if not levels:
            return _BULLET
        return levels.get(level) or levels.get(max((k for k in levels if k <= level), default=0)) or _BULLET

    def paragraph_list_style(self, name: str | None) -> str | None:
        """The list style a paragraph style attaches to its paragraphs (from it or a parent)."""
        value = self._inherited("paragraph", name, "list_style")
        return value if isinstance(value, str) else None

    def outline_level(self, name: str | None) -> int | None:
        """The outline (heading) level a paragraph style gives (from it or a parent)."""
        value = self._inherited("paragraph", name, "outline_level")
        return value if isinstance(value, int) else None

    def emphasis(self, name: str | None) -> tuple[bool, bool]:
        """(bold, italic) of a text style."""
        bold = self._inherited("text", name, "bold")
        italic = self._inherited("text", name, "italic")
        return bool(bold), bool(italic)

    def hidden(self, family: str, name: str | None) -> bool:
        """True when the style hides what uses it: a sheet (``table:display="false"``) or a slide
        (``presentation:visibility="hidden"``)."""
        info = self._styles.get((family, name or ""))
        return bool(info and info.hidden)

    def _inherited(self, family: str, name: str | None, field: str) -> object:
        for _ in range(_MAX_PARENTS):
            info = self._styles.get((family, name or ""))
            if info is None:
                return None
            value = getattr(info, field)
            if value is not None:
                return value
            name = info.parent
        return None


def _list_levels(list_style: etree._Element) -> dict[int, ListLevel]:
    levels: dict[int, ListLevel] = {}
    for child in list_style:
        level = _int(child.get(text("level")), 1, 1, 10)
        if child.tag == _LEVEL_NUMBER:
            levels[level] = ListLevel(
                numbered=True,
                num_format=child.get(style("num-format"), ""),
                prefix=child.get(style("num-prefix"), ""),
                suffix=child.get(style("num-suffix"), ""),
                start=_int(child.get(text("start-value")), 1, 0, _MAX_NUMBER),
                display_levels=_int(child.get(text("display-levels")), 1, 1, 10),
                letter_sync=child.get(style("num-letter-sync")) == "true",
            )
        elif isinstance(child.tag, str):
            levels[level] = _BULLET
    return levels


def _style_info(element: etree._Element) -> _StyleInfo:
    bold = italic = None
    hidden = False
    for props in element:
        if props.tag == style("text-properties"):
            weight = props.get(f"{{{FO}}}font-weight")
            if weight is not None:
                bold = weight == "bold" or (weight.isdigit() and int(weight) >= 600)
            slant = props.get(f"{{{FO}}}font-style")
            if slant is not None:
                italic = slant in ("italic", "oblique")
        elif props.tag == style("table-properties"):
            hidden = props.get(table("display")) == "false"
        elif props.tag == style("drawing-page-properties"):
            hidden = props.get(presentation("visibility")) == "hidden"
    level = element.get(style("default-outline-level"))
    return _StyleInfo(
        parent=element.get(style("parent-style-name")),
        list_style=element.get(style("list-style-name")) or None,
        outline_level=_int(level, 1, 1, 10) if level else None,
        bold=bold,
        italic=italic,
        hidden=hidden,
    )


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)


def parse_count(value: str | None, default: int = 1, high: int = _MAX_NUMBER) -> int:
    """A non-negative count attribute (a start value, a repeat, a span); ``default`` when absent or not a
    number."""
    return _int(value, default, 0, high)
