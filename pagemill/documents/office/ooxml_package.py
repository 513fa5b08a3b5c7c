"""Parts of an OOXML package (PPTX, XLSX): relationships resolved to part names, the main part, and the
bytes of pictures loaded again from the file after reading.

Relationship targets are relative to the part that holds them ("../media/image1.png" from
"ppt/slides/slide1.xml" is "ppt/media/image1.png"); a target that leaves the package (``..`` above its root)
or is external (a linked picture, a hyperlink) never names a part.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pagemill.documents.office.archive import SafeZip, open_archive
from pagemill.errors import ArchiveBomb, CorruptFile
from pagemill.settings import LimitSettings

RELS_NS: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
R_NS: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
OFFICE_DOCUMENT_REL: Final = "/officeDocument"
# A DTD or entity declaration sits before the root element: the first bytes of a part are enough.
_PROLOG_BYTES: Final = 65536


@dataclass(frozen=True, slots=True)
class Relationship:
    """One relationship of a part: the part it names inside the package, or an external URL."""

    type: str
    part: str | None = None
    url: str | None = None

    def is_type(self, suffix: str) -> bool:
        """True when the relationship type ends with ``suffix`` ("/image", "/chart", ...): the same
        relationship has a transitional and a strict namespace."""
        return self.type.endswith(suffix)


def rels_name(part: str) -> str:
    """The relationships part of ``part`` ("ppt/slides/_rels/slide1.xml.rels")."""
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", f"{name}.rels")


def part_rels(package: SafeZip, part: str) -> dict[str, Relationship]:
    """The relationships of ``part`` by id; empty when it has none (a missing rels part is no error)."""
    name = rels_name(part)
    if not package.has(name):
        return {}
    root = package.xml(name)
    folder = posixpath.dirname(part)
    rels: dict[str, Relationship] = {}
    for rel in root.iterfind(f"{{{RELS_NS}}}Relationship"):
        rel_id, target, rel_type = rel.get("Id"), rel.get("Target"), rel.get("Type", "")
        if not rel_id or target is None:
            continue
        if rel.get("TargetMode") == "External":
            rels[rel_id] = Relationship(rel_type, url=target)
        else:
            rels[rel_id] = Relationship(rel_type, part=_resolve(folder, target))
    return rels


def _resolve(folder: str, target: str) -> str | None:
    path = target.split("#", 1)[0]
    joined = path.lstrip("/") if path.startswith("/") else posixpath.join(folder, path)
    normal = posixpath.normpath(joined)
    if normal.startswith("..") or normal in (".", ""):
        return None
    return normal


def main_part(package: SafeZip, default: str) -> str:
    """The package's main document part, named by its root relationships (``default`` when they do not
    say); CorruptFile when the package does not hold it."""
    rels = part_rels(package, "")
    for rel in rels.values():
        if rel.is_type(OFFICE_DOCUMENT_REL) and rel.part and package.has(rel.part):
            return rel.part
    if package.has(default):
        return default
    raise CorruptFile("The document's main part is missing.", reason="main_part")


def refuse_entity_declarations(package: SafeZip) -> None:
    """ArchiveBomb when an XML part of the package declares entities (a billion-laughs part): run before a
    parser reads the parts."""
    for name in package.names:
        if not name.lower().endswith((".xml", ".rels", ".vml")):
            continue
        with package.open(name) as member:
            try:
                head = member.read(_PROLOG_BYTES)
            except (OSError, EOFError, ValueError) as exc:
                raise CorruptFile("A part of the document is damaged.", part=name) from exc
        if b"<!ENTITY" in head:
            raise ArchiveBomb("A part of the document declares XML entities, which are refused.", part=name)


def part_loader(path: Path, limits: LimitSettings) -> Callable[[str], bytes]:
    """``image_loader`` of a package: each call opens the file again (the reader's archive is closed) and
    reads the part named by the picture's ref."""

    def load(ref: str) -> bytes:
        with open_archive(path, limits) as package:
            return package.read(ref)

    return load
