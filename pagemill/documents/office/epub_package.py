"""An EPUB's package: the OPF named by ``META-INF/container.xml``, its manifest and spine, and chapter
titles from the table of contents (the EPUB 3 navigation document, else the EPUB 2 NCX).

Every href is resolved to a member path inside the zip (URL-decoded, relative to the file naming it);
hrefs that leave the container or name another host resolve to None.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.html_parse import local_name, parse_markup
from pagemill.errors import CorruptFile, EncryptedFile

CONTAINER: Final = "META-INF/container.xml"
_ENCRYPTION: Final = "META-INF/encryption.xml"
_OPS_TYPE: Final = "{http://www.idpf.org/2007/ops}type"
_NCX_TYPE: Final = "application/x-dtbncx+xml"
# Fonts are "encrypted" by obfuscation in many ordinary books; only these algorithms mean DRM.
_FONT_OBFUSCATION: Final = frozenset({"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"})


@dataclass(slots=True)
class ManifestItem:
    """A file of the book: its member path, media type and properties (``nav``, ``cover-image``)."""

    path: str
    media_type: str
    properties: frozenset[str] = frozenset()


@dataclass(slots=True)
class Package:
    """The reading order of a book: spine items (linear ones first, then the rest) and TOC titles."""

    spine: list[ManifestItem] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)


def member_path(base: str, href: str) -> str | None:
    """The zip member ``href`` (relative to the member ``base``) names, or None when it is not one."""
    parts = urlsplit(href.strip())
    if parts.scheme or parts.netloc or not parts.path or parts.path.startswith("/"):
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(parts.path)))
    if path == ".." or path.startswith(("../", "/")):
        return None
    return path


def read_package(book: SafeZip) -> Package:
    """The book's spine and chapter titles; CorruptFile when the container or the OPF is missing or
    broken, EncryptedFile when its chapters are DRM-encrypted."""
    container = book.xml(CONTAINER)
    opf_path = next(
        (
            node.get("full-path", "")
            for node in container.iter()
            if local_name(node) == "rootfile" and node.get("full-path")
        ),
        None,
    )
    if not opf_path:
        raise CorruptFile("The e-book names no package document.", reason="no_rootfile")
    opf = book.xml(opf_path)
    items: dict[str, ManifestItem] = {}
    spine_refs: list[tuple[str, bool]] = []
    toc_id: str | None = None
    for node in opf.iter():
        tag = local_name(node)
        if tag == "item" and node.get("id") and node.get("href"):
            path = member_path(opf_path, node.get("href", ""))
            if path is not None:
                props = frozenset((node.get("properties") or "").split())
                items[node.get("id", "")] = ManifestItem(path, (node.get("media-type") or "").lower(), props)
        elif tag == "spine":
            toc_id = node.get("toc")
        elif tag == "itemref" and node.get("idref"):
            spine_refs.append((node.get("idref", ""), (node.get("linear") or "yes").strip() != "no"))
    if not spine_refs:
        raise CorruptFile("The e-book's package has no reading order.", reason="no_spine")
    # Non-linear items (covers, pop-up notes) are kept, after the reading order.
    ordered = [ref for ref, linear in spine_refs if linear] + [
        ref for ref, linear in spine_refs if not linear
    ]
    package = Package(spine=[items[ref] for ref in ordered if ref in items])
    _check_drm(book, {item.path for item in package.spine})
    nav = next((item for item in items.values() if "nav" in item.properties), None)
    if nav is not None and book.has(nav.path):
        package.titles = _nav_titles(book, nav.path)
    ncx = items.get(toc_id or "") or next((i for i in items.values() if i.media_type == _NCX_TYPE), None)
    if not package.titles and ncx is not None and book.has(ncx.path):
        package.titles = _ncx_titles(book, ncx.path)
    return package


def _check_drm(book: SafeZip, chapters: set[str]) -> None:
    if not book.has(_ENCRYPTION):
        return
    for data in book.xml(_ENCRYPTION).iter():
        if local_name(data) != "encrypteddata":
            continue
        algorithm = next(
            (n.get("Algorithm") for n in data.iter() if local_name(n) == "encryptionmethod"), None
        )
        uri = next((n.get("URI") for n in data.iter() if local_name(n) == "cipherreference"), None)
        if algorithm in _FONT_OBFUSCATION or not uri:
            continue
        if member_path("", uri) in chapters:
            raise EncryptedFile("The e-book is protected by DRM and cannot be read.", reason="drm")


def _nav_titles(book: SafeZip, nav_path: str) -> dict[str, str]:
    """Chapter path -> the text of its first entry in the EPUB 3 navigation document's ``toc`` nav."""
    root = parse_markup(book.read(nav_path), xhtml=True)
    if root is None:
        return {}
    navs = [node for node in root.iter() if local_name(node) == "nav"]
    toc = next(
        (n for n in navs if "toc" in (n.get(_OPS_TYPE) or n.get("epub:type") or "").split()),
        navs[0] if navs else None,
    )
    titles: dict[str, str] = {}
    for link in toc.iter() if toc is not None else ():
        if local_name(link) == "a" and link.get("href"):
            path = member_path(nav_path, link.get("href", ""))
            text = _text(link)
            if path is not None and text:
                titles.setdefault(path, text)
    return titles


def _ncx_titles(book: SafeZip, ncx_path: str) -> dict[str, str]:
    """Chapter path -> the label of its first navPoint in the EPUB 2 NCX."""
    titles: dict[str, str] = {}
    for point in book.xml(ncx_path).iter():
        if local_name(point) != "navpoint":
            continue
        label = next((n for n in point if local_name(n) == "navlabel"), None)
        content = next((n for n in point if local_name(n) == "content"), None)
        if label is None or content is None or not content.get("src"):
            continue
        path = member_path(ncx_path, content.get("src", ""))
        text = _text(label)
        if path is not None and text:
            titles.setdefault(path, text)
    return titles


def _text(node: etree._Element) -> str:
    return " ".join(etree.tostring(node, method="text", encoding=str, with_tail=False).split())
