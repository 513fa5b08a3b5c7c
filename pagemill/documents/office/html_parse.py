"""Untrusted HTML and XHTML into an element tree: the declared charset, a safe parser, bounded depth.

HTML is decoded here (a byte order mark, then ``<meta charset>`` or an XML declaration, else UTF-8 with
replacement) so libxml2 never guesses. The HTML parser loads nothing over the network and does not expand
entities declared in a DOCTYPE's internal subset (HTML has none; the subset is cut off so it does not show
up as text either). libxml2 stops at 256 levels of nesting; a document that deep is refused rather than
read in part. XHTML (EPUB chapters) is parsed as XML by :func:`parse_xml` first, which refuses entity
declarations, and as HTML when it is not well-formed.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Callable
from typing import Final

import lxml.html
from lxml import etree

from pagemill.documents.office.archive import parse_xml
from pagemill.errors import CorruptFile

_PRESCAN_BYTES: Final = 4096
_META_CHARSET: Final = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.I)
_XML_ENCODING: Final = re.compile(rb"^\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9._:-]{1,40})")
_XML_DECLARATION: Final = re.compile(r"^\s*<\?xml[^>]{0,500}\?>")
# A DOCTYPE with an internal subset: `<!DOCTYPE html [ ... ]>`, cut whole (entities and all).
_DOCTYPE_SUBSET: Final = re.compile(r"<!DOCTYPE[^\[>]{0,1000}\[.*?\]\s*>", re.I | re.S)
# What browsers do with labels that are not what they say (WHATWG Encoding: latin-1 is windows-1252,
# and a page cannot declare UTF-16 in ASCII).
_ALIASES: Final = {
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "ascii": "cp1252",
    "utf-16-be": "utf-8",
    "utf-16-le": "utf-8",
    "utf-16": "utf-8",
    "utf-32": "utf-8",
    "utf-32-be": "utf-8",
    "utf-32-le": "utf-8",
}
_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
XHTML_NS: Final = "http://www.w3.org/1999/xhtml"


def codec_name(label: str | None) -> str | None:
    """The Python codec a charset label means to a browser, or None for an unknown label."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    return _ALIASES.get(name, name)


def decode_html(data: bytes) -> str:
    """The text of an HTML document in its declared charset (BOM, meta, XML declaration), else UTF-8; bytes
    that do not decode become U+FFFD."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    head = data[:_PRESCAN_BYTES]
    match = _META_CHARSET.search(head) or _XML_ENCODING.match(head)
    declared = codec_name(match.group(1).decode("ascii")) if match else None
    return data.decode(declared or "utf-8", errors="replace")


def parse_markup(data: bytes | str, *, xhtml: bool = False) -> etree._Element | None:
    """The root element of an HTML (or, with ``xhtml``, XHTML) document; None when it has no content.
    CorruptFile when it nests deeper than the parser allows; ArchiveBomb for XHTML declaring entities."""
    if xhtml and isinstance(data, bytes):
        try:
            return parse_xml(data, part="xhtml")
        except CorruptFile:
            pass  # Not well-formed: read it the lenient way, as browsers do with broken XHTML.
    text = data if isinstance(data, str) else decode_html(data)
    text = _XML_DECLARATION.sub("", text, count=1)  # lxml refuses a str that declares an encoding
    head, rest = text[:65536], text[65536:]
    text = _DOCTYPE_SUBSET.sub("<!DOCTYPE html>", head, count=1) + rest
    parser = lxml.html.HTMLParser(
        no_network=True, huge_tree=False, remove_comments=True, remove_pis=True, default_doctype=False
    )
    try:
        root = lxml.html.document_fromstring(text, parser=parser)
    except etree.ParserError:
        return None  # "Document is empty"
    if any(entry.type_name == "ERR_RESOURCE_LIMIT" for entry in parser.error_log):
        raise CorruptFile("The HTML nests elements deeper than allowed.", reason="depth", max_depth=256)
    return root


def local_name(node: etree._Element) -> str | None:
    """An element's tag without namespace, lower-cased; None for comments, PIs and entities."""
    tag = node.tag
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1].lower()


def entity_text(node: etree._Element) -> str | None:
    """The character an unexpanded entity reference (``&nbsp;`` in XHTML without its DTD) stands for."""
    if isinstance(node, etree._Entity):
        text = node.text or ""
        return html.unescape(text) if text != html.unescape(text) else ""
    return None


def walk(
    root: etree._Element,
    start: Callable[[etree._Element], bool],
    end: Callable[[etree._Element], None],
    text: Callable[[str], None],
) -> None:
    """Visit ``root``'s subtree in document order without recursion: ``start(element)`` (True to descend),
    its text, its children, ``end(element)``, then its tail (except the root's)."""
    stack: list[tuple[etree._Element, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            end(node)
        else:
            value = entity_text(node)
            if value is not None:
                text(value)
            elif start(node):
                stack.append((node, True))
                if node.text and isinstance(node.tag, str):
                    text(node.text)
                stack.extend((child, False) for child in reversed(node))
                continue
        if node is not root and node.tail:
            text(node.tail)
