"""HTML into blocks: the walk shared by the HTML, EPUB and e-mail readers.

Block elements end a paragraph; the text of inline elements is gathered into it, emphasis and safe links
as markdown in ``md``. Headings, lists (with the document's own numbers), tables, ``pre`` and pictures
become their own blocks; a ``blockquote``'s paragraphs are quoted in markdown. Scripts, styles,
navigation, forms and hidden elements are not content. The walk is iterative and counts elements, so
neither depth nor size can exhaust the stack or run unbounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

from lxml import etree

from pagemill.documents.office.blocks import Block, Code, Heading, Image, ListItem, Paragraph
from pagemill.documents.office.html_images import DataImages, resolve_src, src_name
from pagemill.documents.office.html_lists import ListContext, open_list
from pagemill.documents.office.html_parse import local_name, parse_markup, walk
from pagemill.documents.office.html_tables import layout_tables, read_table
from pagemill.errors import CorruptFile
from pagemill.settings import LimitSettings

MAX_ELEMENTS: Final = 1_000_000
_SKIPPED: Final = frozenset(
    {
        *("script", "style", "noscript", "template", "head", "title", "meta", "link", "base", "nav"),
        *("iframe", "frame", "frameset", "object", "embed", "applet", "param", "canvas", "audio", "video"),
        *("source", "track", "map", "area", "select", "datalist", "option", "input", "textarea"),
        *("button", "math", "dialog"),
    }
)
_BLOCKS: Final = frozenset(
    {
        *("html", "body", "p", "div", "section", "article", "main", "header", "footer", "address"),
        *("aside", "figure", "figcaption", "dl", "dt", "dd", "details", "summary", "center", "form"),
        *("fieldset", "legend", "hgroup", "search", "hr", "table", "caption", "thead", "tbody", "tfoot"),
        *("tr", "td", "th"),
    }
)
_HEADINGS: Final = {f"h{level}": level for level in range(1, 7)}
_MARKS: Final[dict[str, Literal["strong", "em", "code"]]] = {
    "strong": "strong",
    "b": "strong",
    "em": "em",
    "i": "em",
    "code": "code",
    "kbd": "code",
    "samp": "code",
    "tt": "code",
}
_HIDDEN_STYLE: Final = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_LINK_SCHEMES: Final = frozenset({"http", "https", "mailto"})
_XLINK_HREF: Final = "{http://www.w3.org/1999/xlink}href"


def html_blocks(
    data: bytes | str,
    *,
    base_ref: str | None,
    limits: LimitSettings,
    images: dict[str, bytes] | None = None,
    xhtml: bool = False,
) -> tuple[list[Block], str | None]:
    """The blocks of an HTML document and its ``<title>``.

    ``base_ref`` is the document's path inside its container: relative picture sources resolve against it
    (None: they get no ref). ``data:`` pictures are decoded into ``images`` (refs ``data:N``, within
    ``limits.max_upload_bytes`` in all) when it is given; ``cid:`` sources keep a ``cid:<id>`` ref for
    the e-mail reader. ``xhtml`` parses as XML first (EPUB). CorruptFile for a document nested or sized
    beyond the limits; ArchiveBomb for XHTML declaring entities.
    """
    root = parse_markup(data, xhtml=xhtml)
    if root is None:
        return [], None
    builder = _Builder(
        base_ref=base_ref,
        limits=limits,
        data_images=DataImages(images, limits.max_upload_bytes),
        layout=layout_tables(root),
    )
    builder.read(root)
    return builder.blocks, _title(root)


def is_hidden(element: etree._Element) -> bool:
    """True for an element not shown: the ``hidden`` attribute, ``display:none`` or ``visibility:hidden``."""
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


def safe_href(href: str | None) -> str | None:
    """A link target worth keeping in markdown (absolute http(s) or mailto), with spaces and parentheses
    escaped; None for anything else (relative, ``javascript:``, ``data:``)."""
    if not href:
        return None
    # Browsers drop tabs and newlines inside a URL (so `java\nscript:` is javascript:) and trim its ends.
    href = href.strip().replace("\t", "").replace("\n", "").replace("\r", "").replace(" ", "%20")
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return None
    if scheme not in _LINK_SCHEMES:
        return None
    return href.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def _title(root: etree._Element) -> str | None:
    for child in root:
        if local_name(child) == "head":
            for node in child.iter():
                if local_name(node) == "title":
                    text = etree.tostring(node, method="text", encoding=str, with_tail=False)
                    return " ".join(text.split()) or None
    return None


def _normalize(text: str) -> str:
    """Whitespace as a browser shows it: runs collapsed within lines, blank lines at most one."""
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


@dataclass(slots=True)
class _Mark:
    """An open inline element rendered as markdown around its text (from ``start`` in the md parts)."""

    element: etree._Element
    kind: Literal["strong", "em", "code", "link"]
    start: int
    href: str | None = None


@dataclass(slots=True)
class _Item:
    """An open ``li``: its marker, and whether its first text was written as the ListItem yet."""

    level: int
    ordered: bool
    marker: str
    depth: int
    emitted: bool = False


@dataclass(slots=True)
class _Counter:
    elements: int = 0


@dataclass
class _Builder:
    base_ref: str | None
    limits: LimitSettings
    data_images: DataImages
    layout: set[etree._Element]
    counter: _Counter = field(default_factory=_Counter)
    blocks: list[Block] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    mds: list[str] = field(default_factory=list)
    marked: bool = False
    marks: list[_Mark] = field(default_factory=list)
    lists: list[ListContext] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)
    quote: int = 0
    heading: int | None = None
    pictures: list[Image] = field(default_factory=list)

    def read(self, root: etree._Element) -> None:
        walk(root, self._start, self._end, self._text)
        self._flush()

    # -- the walk

    def _start(self, element: etree._Element) -> bool:
        tag = local_name(element)
        if tag is None:
            return False
        self.counter.elements += 1
        if self.counter.elements > MAX_ELEMENTS:
            raise CorruptFile("The HTML has more elements than allowed.", max_elements=MAX_ELEMENTS)
        if is_hidden(element):
            return False
        if tag == "svg":
            self._svg_pictures(element)
            return False
        if tag in _SKIPPED:
            return False
        if tag == "br":
            self._add("\n")
            return False
        if tag == "img":
            self._picture(element.get("src") or "", element.get("alt"), element)
            return False
        if tag == "pre":
            self._flush()
            code = _raw_text(element).removeprefix("\r").removeprefix("\n").rstrip()
            if code.strip():
                self.blocks.append(Code(code))
            return False
        if tag == "table" and element not in self.layout:
            self._flush()
            table = read_table(element, self._cell, is_hidden, self.limits)
            if table is not None:
                self.blocks.append(table)
                self._flush()  # pictures of its cells follow it
                return False
        if tag in _HEADINGS:
            self._flush()
            self.heading = _HEADINGS[tag]
        elif tag in ("ul", "ol", "menu", "dir"):
            self._flush()
            self.lists.append(open_list(element))
        elif tag == "li":
            self._flush()
            context = self.lists[-1] if self.lists else ListContext(ordered=False)
            marker = context.marker(element)
            self.items.append(_Item(max(len(self.lists) - 1, 0), context.ordered, marker, len(self.lists)))
        elif tag == "blockquote":
            self._flush()
            self.quote += 1
        elif tag in _MARKS:
            self._open_mark(element, _MARKS[tag])
        elif tag == "a":
            href = safe_href(element.get("href"))
            if href is not None and not any(mark.kind == "link" for mark in self.marks):
                self.marks.append(_Mark(element, "link", len(self.mds), href))
        elif tag in _BLOCKS:
            self._boundary()
        return True

    def _end(self, element: etree._Element) -> None:
        tag = local_name(element)
        if self.marks and self.marks[-1].element is element:
            self._close_mark(self.marks.pop())
        if tag in _HEADINGS:
            self._flush()
            self.heading = None
        elif tag in ("ul", "ol", "menu", "dir"):
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "li":
            self._flush()
            if self.items:
                self.items.pop()
        elif tag == "blockquote":
            self._flush()
            self.quote = max(self.quote - 1, 0)
        elif tag in _BLOCKS:
            self._boundary()

    def _text(self, text: str) -> None:
        # Source line breaks are spaces in HTML; only <br> breaks a line.
        self._add(text.replace("\r", " ").replace("\n", " "))

    # -- inline text and marks

    def _add(self, text: str) -> None:
        self.texts.append(text)
        self.mds.append(text)

    def _open_mark(self, element: etree._Element, kind: Literal["strong", "em", "code"]) -> None:
        if not any(mark.kind == kind for mark in self.marks):  # <b><b>x</b></b> is bold once
            self.marks.append(_Mark(element, kind, len(self.mds)))

    def _close_mark(self, mark: _Mark) -> None:
        """Wrap the md gathered since the mark opened, whitespace kept outside the markers."""
        inner = "".join(self.mds[mark.start :])
        del self.mds[mark.start :]
        core = inner.strip()
        if not core or (mark.kind == "code" and "`" in core):
            self.mds.append(inner)
            return
        lead = inner[: len(inner) - len(inner.lstrip())]
        trail = inner[len(inner.rstrip()) :]
        if mark.kind == "link":
            wrapped = f"[{core}]({mark.href})"
        else:
            marker = {"strong": "**", "em": "*", "code": "`"}[mark.kind]
            wrapped = f"{marker}{core}{marker}"
        self.mds.append(f"{lead}{wrapped}{trail}")
        self.marked = True

    def _boundary(self) -> None:
        """A block element starts or ends: inside a list item its blocks stay one item; else a new block."""
        if self.heading is not None or (self.items and self.items[-1].depth == len(self.lists)):
            self._add("\n")
        else:
            self._flush()

    def _flush(self) -> None:
        """Write the gathered text as a block (heading, list item, paragraph), then pending pictures."""
        for mark in reversed(self.marks):
            self._close_mark(mark)
        text = _normalize("".join(self.texts))
        md = _normalize("".join(self.mds)) if self.marked else text
        self.texts.clear()
        self.mds.clear()
        self.marked = False
        for mark in self.marks:
            mark.start = 0
        if text:
            self.blocks.append(self._block(text, md))
        self.blocks.extend(self.pictures)
        self.pictures.clear()

    def _block(self, text: str, md: str) -> Block:
        extra = md if md != text else None
        if self.heading is not None:
            return Heading(" ".join(text.split()), self.heading, " ".join(md.split()) if extra else None)
        item = self.items[-1] if self.items else None
        if item is not None and item.depth == len(self.lists) and not item.emitted:
            item.emitted = True
            # An item's paragraphs are one item: its lines kept, without blank lines between them.
            text = "\n".join(line for line in text.split("\n") if line)
            md = "\n".join(line for line in md.split("\n") if line)
            return ListItem(text, item.level, item.ordered, item.marker, md if md != text else None)
        if self.quote:
            prefix = "> " * self.quote
            return Paragraph(
                text, "\n".join(prefix.rstrip() if not line else prefix + line for line in md.split("\n"))
            )
        return Paragraph(text, extra)

    # -- pictures and table cells

    def _picture(self, src: str, alt: str | None, element: etree._Element) -> None:
        if element.get("width", "").strip() in ("0", "1") and element.get("height", "").strip() in ("0", "1"):
            return  # a tracking pixel, not a picture
        ref = resolve_src(src, self.base_ref, self.data_images)
        self.pictures.append(Image(ref=ref, alt=" ".join((alt or "").split()), name=src_name(src)))

    def _svg_pictures(self, svg: etree._Element) -> None:
        """An SVG is drawn, not read; the raster pictures it shows (an EPUB cover) are kept."""
        for node in svg.iter():
            if local_name(node) == "image":
                src = node.get(_XLINK_HREF) or node.get("href") or node.get("xlink:href")
                if src:
                    self._picture(src, None, node)

    def _cell(self, cell: etree._Element) -> tuple[str, str]:
        """A data table cell's text and markdown; its pictures follow the table."""
        builder = _Builder(self.base_ref, self.limits, self.data_images, self.layout, self.counter)
        builder.read(cell)
        texts: list[str] = []
        mds: list[str] = []
        for block in builder.blocks:
            if isinstance(block, Image):
                self.pictures.append(block)
            elif isinstance(block, Heading | Paragraph | ListItem | Code):
                texts.append(block.text)
                mds.append(getattr(block, "md", None) or block.text)
        return "\n".join(texts), " ".join(mds)


def _raw_text(element: etree._Element) -> str:
    """The text of a ``pre`` as written (line breaks kept; ``br`` as a newline)."""
    parts: list[str] = []

    def start(node: etree._Element) -> bool:
        tag = local_name(node)
        if tag == "br":
            parts.append("\n")
        return tag is not None and tag not in _SKIPPED and tag != "br" and not is_hidden(node)

    walk(element, start, lambda node: None, parts.append)
    return "".join(parts).replace("\xa0", " ")
