"""The container of a legacy binary office file, checked before LibreOffice sees it, and its encryption flag.

LibreOffice picks its import filter from the file's extension, but when the bytes do not fit that filter its
type detection falls back to whatever else they look like: random bytes named ``.doc`` are imported as plain
text and "convert" without complaint. So the container the kind promises is checked first: an OLE2 compound
file holding the kind's main stream (DOC, XLS, PPT), or RTF's ``{\\rtf`` opening.

LibreOffice cannot ask for a password when it runs headless, so a password-protected file simply fails to
convert. After such a failure :func:`is_encrypted` looks at the file's encryption flag, to tell the client
why. It reads a few header bytes of one stream, never whole streams (olefile's ``openstream`` would read all
of a 300 MB ``WordDocument``). Checking after the failure rather than before matters: workbooks "protected"
with Excel's built-in default password carry a FILEPASS record too, and LibreOffice opens those.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Final

import olefile  # type: ignore[import-untyped, unused-ignore]

from pagemill.documents.kinds import DocumentKind
from pagemill.errors import CorruptFile

_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_RTF_MAGIC: Final = b"{\\rtf"
# The stream that holds each kind's content (MS-DOC, MS-XLS: "Workbook" for BIFF8, "Book" for BIFF5; MS-PPT).
_MAIN_STREAMS: Final[dict[DocumentKind, tuple[str, ...]]] = {
    DocumentKind.DOC: ("WordDocument",),
    DocumentKind.XLS: ("Workbook", "Book"),
    DocumentKind.PPT: ("PowerPoint Document",),
}
# Streams up to this size are read whole through olefile; larger ones sector by sector (only the head).
_SMALL_STREAM_BYTES: Final = 1024 * 1024
_END_OF_CHAIN: Final = 0xFFFFFFFE

# MS-DOC 2.5.2 FibBase: the 16-bit flags at offset 10; fEncrypted is bit 8.
_FIB_FLAGS_OFFSET: Final = 10
_FIB_ENCRYPTED: Final = 0x0100
# MS-XLS 2.4.117: a FilePass record in the workbook globals, right after BOF (and an optional WriteProtect).
_XLS_FILEPASS: Final = 0x002F
_XLS_EOF: Final = 0x000A
_XLS_RECORDS_SCANNED: Final = 8
# MS-PPT 2.3.2 CurrentUserAtom: headerToken at offset 12 of the "Current User" stream.
_PPT_TOKEN_OFFSET: Final = 12
_PPT_ENCRYPTED_TOKEN: Final = 0xF3D1C4DF


def check_container(path: Path, kind: DocumentKind) -> None:
    """Raise CorruptFile unless the file at ``path`` is the container ``kind`` says: OLE2 with the kind's
    main stream, or an RTF opening."""
    with open(path, "rb") as fileobj:
        head = fileobj.read(len(_OLE2_MAGIC))
    if kind is DocumentKind.RTF:
        if not head.startswith(_RTF_MAGIC):
            raise CorruptFile("The file is not an RTF document.", reason="container")
        return
    if not head.startswith(_OLE2_MAGIC):
        raise CorruptFile("The file is not a legacy Office document.", reason="container")
    ole = _open_ole(path)
    try:
        if _main_stream(ole, kind) is None:
            raise CorruptFile("The document's main part is missing.", reason="container")
    finally:
        ole.close()


def is_encrypted(path: Path, kind: DocumentKind) -> bool:
    """True when the legacy file at ``path`` says it is password-protected (False when it cannot say)."""
    if kind is DocumentKind.RTF:
        return False
    try:
        ole = _open_ole(path)
    except CorruptFile:
        return False
    try:
        if kind is DocumentKind.DOC:
            fib = _stream_head(ole, "WordDocument", _FIB_FLAGS_OFFSET + 2)
            return _u16(fib, _FIB_FLAGS_OFFSET) & _FIB_ENCRYPTED != 0
        if kind is DocumentKind.XLS:
            stream = _main_stream(ole, kind)
            return stream is not None and _has_filepass(_stream_head(ole, stream, 4096))
        if kind is DocumentKind.PPT:
            atom = _stream_head(ole, "Current User", _PPT_TOKEN_OFFSET + 4)
            return (
                len(atom) == _PPT_TOKEN_OFFSET + 4 and _u32(atom, _PPT_TOKEN_OFFSET) == _PPT_ENCRYPTED_TOKEN
            )
        return False
    except Exception:  # olefile on a hostile directory: the file cannot say, so it is not encrypted
        return False
    finally:
        ole.close()


def _open_ole(path: Path) -> Any:
    try:
        return olefile.OleFileIO(str(path))
    except Exception:  # olefile raises many kinds of errors on damaged directories
        raise CorruptFile("The document's structure is damaged.", reason="ole2") from None


def _main_stream(ole: Any, kind: DocumentKind) -> str | None:
    """The name of the kind's main stream in the root storage, or None."""
    try:
        names = {
            entry.name.lower(): entry.name
            for entry in ole.root.kids
            if entry.entry_type == olefile.STGTY_STREAM
        }
    except Exception:  # as above: a damaged directory
        raise CorruptFile("The document's structure is damaged.", reason="ole2") from None
    for name in _MAIN_STREAMS.get(kind, ()):
        if name.lower() in names:
            return str(names[name.lower()])
    return None


def _stream_head(ole: Any, name: str, size: int) -> bytes:
    """Up to ``size`` first bytes of the root stream ``name`` (b"" when there is none)."""
    entry = next((kid for kid in ole.root.kids if kid.name.lower() == name.lower()), None)
    if entry is None or entry.entry_type != olefile.STGTY_STREAM:
        return b""
    if entry.size <= _SMALL_STREAM_BYTES:
        data: bytes = ole.openstream(entry.name).read(size)
        return data
    # A large stream lives in regular sectors (never the ministream): follow its FAT chain for a few of them.
    wanted = min(size, entry.size)
    out = bytearray()
    sector = entry.isectStart
    while len(out) < wanted and sector != _END_OF_CHAIN and 0 <= sector < len(ole.fat):
        ole.fp.seek(ole.sectorsize * (sector + 1))
        chunk = ole.fp.read(ole.sectorsize)
        if not chunk:
            break
        out += chunk
        sector = ole.fat[sector]
    return bytes(out[:wanted])


def _has_filepass(workbook: bytes) -> bool:
    """True when a FilePass record follows the workbook's BOF among its first few records."""
    offset = 0
    for _ in range(_XLS_RECORDS_SCANNED):
        if offset + 4 > len(workbook):
            return False
        record, length = struct.unpack_from("<HH", workbook, offset)
        if record == _XLS_FILEPASS:
            return True
        if record == _XLS_EOF:
            return False
        offset += 4 + length
    return False


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little") if len(data) >= offset + 2 else 0


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little") if len(data) >= offset + 4 else 0
