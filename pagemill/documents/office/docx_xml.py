"""WordprocessingML as the DOCX reader sees it: element names that ignore which OOXML flavour wrote them, and
a part's relationships.

A DOCX is Transitional OOXML (``schemas.openxmlformats.org`` namespaces) or, rarely, Strict OOXML
(``purl.oclc.org/ooxml`` namespaces, the same vocabulary). Every element is named here by a short key such
as ``"w:p"`` whichever of the two namespaces it is in, so the reader is written once for both.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, TypeAlias

from lxml import etree

from pagemill.documents.office.archive import SafeZip

_NAMESPACES: Final[dict[str, tuple[str, ...]]] = {
    "w": (
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
        "http://purl.oclc.org/ooxml/wordprocessingml/main",
    ),
    "r": (
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
        "http://purl.oclc.org/ooxml/officeDocument/relationships",
    ),
    "m": (
        "http://schemas.openxmlformats.org/officeDocument/2006/math",
        "http://purl.oclc.org/ooxml/officeDocument/math",
    ),
    "wp": (
        "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing",
        "http://purl.oclc.org/ooxml/drawingml/wordprocessingDrawing",
    ),
    "a": (
        "http://schemas.openxmlformats.org/drawingml/2006/main",
        "http://purl.oclc.org/ooxml/drawingml/main",
    ),
    "pic": (
        "http://schemas.openxmlformats.org/drawingml/2006/picture",
        "http://purl.oclc.org/ooxml/drawingml/picture",
    ),
    "v": ("urn:schemas-microsoft-com:vml",),
    "mc": ("http://schemas.openxmlformats.org/markup-compatibility/2006",),
    "pr": ("http://schemas.openxmlformats.org/package/2006/relationships",),
}
_PREFIXES: Final = {uri: prefix for prefix, uris in _NAMESPACES.items() for uri in uris}

Element: TypeAlias = etree._Element


def key(element: Element) -> str:
    """The element's name as ``prefix:local`` ("w:p", "m:oMath"); "" for comments and processing
    instructions, and ``?:local`` for a namespace the reader does not know."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    if tag[0] != "{":
        return tag
    uri, _, local = tag[1:].partition("}")
    return f"{_PREFIXES.get(uri, '?')}:{local}"


def attr(element: Element | None, name: str) -> str | None:
    """The attribute ``prefix:local`` of ``element`` in either flavour's namespace (or an unqualified
    attribute when ``name`` has no prefix)."""
    if element is None:
        return None
    prefix, _, local = name.rpartition(":")
    if not prefix:
        return str(element.get(local)) if element.get(local) is not None else None
    for uri in _NAMESPACES[prefix]:
        value = element.get(f"{{{uri}}}{local}")
        if value is not None:
            return str(value)
    return None


def child(element: Element | None, name: str) -> Element | None:
    """The first child named ``name`` ("w:pPr")."""
    if element is None:
        return None
    for item in element:
        if key(item) == name:
            return item
    return None


def children(element: Element, name: str) -> Iterator[Element]:
    """The children named ``name``, in order."""
    return (item for item in element if key(item) == name)


def descendants(element: Element, name: str) -> Iterator[Element]:
    """Every element under ``element`` named ``name``, in document order."""
    return (item for item in element.iter() if key(item) == name)


def child_val(element: Element | None, name: str) -> str | None:
    """``w:val`` of the child ``name`` (the shape of nearly every WordprocessingML property)."""
    return attr(child(element, name), "w:val")


def is_on(element: Element | None) -> bool:
    """A toggle property (``<w:b/>``, ``<w:b w:val="false"/>``): present and not switched off."""
    if element is None:
        return False
    return attr(element, "w:val") not in ("0", "false", "off", "none")


def as_int(value: str | None, default: int = 0) -> int:
    """An integer attribute, ``default`` when absent or not a number."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def alternate_choice(element: Element) -> Element | None:
    """The branch of an ``mc:AlternateContent`` to read: its first Choice (the modern markup; the Fallback
    repeats the same content as VML), else the Fallback."""
    choice = child(element, "mc:Choice")
    return choice if choice is not None else child(element, "mc:Fallback")


@dataclass(frozen=True, slots=True)
class Relationship:
    """A part's link to another part (``target`` is then a member name) or to a URL (``external``)."""

    type: str
    target: str
    external: bool


def relationships(archive: SafeZip, part: str) -> dict[str, Relationship]:
    """The relationships of ``part`` by id; internal targets resolved to member names."""
    folder, name = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", f"{name}.rels")
    if not archive.has(rels_name):
        return {}
    found: dict[str, Relationship] = {}
    for item in archive.xml(rels_name):
        if key(item) != "pr:Relationship":
            continue
        rel_id, target = item.get("Id"), item.get("Target")
        if not rel_id or target is None:
            continue
        external = item.get("TargetMode") == "External"
        if not external:
            target = resolve_target(folder, target)
        found[rel_id] = Relationship(item.get("Type") or "", target, external)
    return found


def resolve_target(folder: str, target: str) -> str:
    """An internal relationship target as a member name (relative to the source part's folder, or to the
    package root when it starts with '/')."""
    target = target.split("#", 1)[0]
    joined = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
    return posixpath.normpath(joined).lstrip("/")


def related_part(rels: dict[str, Relationship], type_suffix: str) -> str | None:
    """The member of the first internal relationship whose type ends with ``/type_suffix`` (the same suffix
    in Transitional and Strict relationship types)."""
    for rel in rels.values():
        if not rel.external and rel.type.endswith("/" + type_suffix):
            return rel.target
    return None
