"""Open an untrusted zip container (OOXML, ODF, EPUB) after checking it for bombs and traps.

Everything is decided from the central directory before a byte is inflated: the member count, the total
size the members claim, each member's compression ratio, and names (absolute, ``..``, drive letters, NUL).
Archives inside (a spreadsheet embedded in a DOCX is one) count towards the total but are never opened: no
reader recurses into a member. Reading a member is then capped at the size it claimed, so a member that
lies about its size stops at the claim instead of filling memory. XML members are parsed by
:func:`parse_xml` with entities, DTDs and the network off.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Final

from lxml import etree

from pagemill.errors import ArchiveBomb, CorruptFile
from pagemill.settings import LimitSettings

# Members this small compress any way they like (a run of zeros); the ratio check ignores them.
_RATIO_FLOOR_BYTES: Final = 1024 * 1024
_XML_PARSER: Final = etree.XMLParser(
    resolve_entities=False, no_network=True, dtd_validation=False, load_dtd=False, huge_tree=False
)


class SafeZip:
    """A checked zip archive: members read by name, each capped at the size it declared."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._zip = archive
        self._infos = {info.filename: info for info in archive.infolist()}

    @property
    def names(self) -> list[str]:
        """Member names in archive order."""
        return list(self._infos)

    def has(self, name: str) -> bool:
        """True when the archive holds ``name``."""
        return name in self._infos

    def read(self, name: str) -> bytes:
        """A member's bytes; CorruptFile when it is missing, damaged or longer than it claimed."""
        info = self._infos.get(name)
        if info is None:
            raise CorruptFile("A part of the document is missing.", part=name)
        try:
            with self._zip.open(info) as member:
                data = member.read(info.file_size + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            RuntimeError,
            NotImplementedError,
            ValueError,
        ) as exc:
            # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method.
            raise CorruptFile("A part of the document is damaged.", part=name) from exc
        if len(data) > info.file_size:
            raise ArchiveBomb("A part of the document is larger than the archive says.", part=name)
        return data

    def open(self, name: str) -> IO[bytes]:
        """A member as a stream (for streaming parsers); its size was checked against the limits."""
        info = self._infos.get(name)
        if info is None:
            raise CorruptFile("A part of the document is missing.", part=name)
        try:
            return self._zip.open(info)
        except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, NotImplementedError) as exc:
            raise CorruptFile("A part of the document is damaged.", part=name) from exc

    def xml(self, name: str) -> etree._Element:
        """A member parsed as XML (entities off, no network, no DTD)."""
        return parse_xml(self.read(name), part=name)

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_xml(data: bytes, *, part: str = "") -> etree._Element:
    """Parse untrusted XML: no entity expansion, no DTD, no network, no huge trees; CorruptFile if broken
    and ArchiveBomb if it declares entities (a billion-laughs part)."""
    if b"<!ENTITY" in data:
        raise ArchiveBomb("A part of the document declares XML entities, which are refused.", part=part)
    try:
        return etree.fromstring(data, parser=_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise CorruptFile("A part of the document is not well-formed XML.", part=part) from exc


def open_archive(path: Path, limits: LimitSettings) -> SafeZip:
    """Open and check the zip at ``path``; ArchiveBomb for a bomb or a trap, CorruptFile for a zip that is
    not one (truncated, no central directory)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CorruptFile("The file is not a complete zip archive.", reason="zip") from exc
    try:
        check_members(archive.infolist(), limits)
    except BaseException:
        archive.close()
        raise
    return SafeZip(archive)


def check_members(infos: list[zipfile.ZipInfo], limits: LimitSettings) -> None:
    """Refuse an archive by its directory alone: too many members, too many bytes claimed in all, a member
    compressed beyond ``limits.max_compression_ratio``, unsafe names."""
    if len(infos) > limits.max_archive_members:
        raise ArchiveBomb(
            f"The archive has {len(infos)} parts; at most {limits.max_archive_members} are accepted.",
            members=len(infos),
            max_members=limits.max_archive_members,
        )
    total = 0
    for info in infos:
        _check_name(info.filename)
        total += info.file_size
        if total > limits.max_archive_bytes:
            raise ArchiveBomb(
                "The archive unpacks to more bytes than allowed.", max_bytes=limits.max_archive_bytes
            )
        if info.file_size > _RATIO_FLOOR_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise ArchiveBomb(
                    "A part of the archive is compressed more than a real document is.",
                    part=info.filename,
                    ratio=round(ratio),
                    max_ratio=limits.max_compression_ratio,
                )


def _check_name(name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if (
        not name
        or "\x00" in name
        or path.is_absolute()
        or ".." in path.parts
        or (len(name) > 1 and name[1] == ":")  # a drive letter
    ):
        raise ArchiveBomb("The archive has a part with an unsafe name.", part=name[:200])
