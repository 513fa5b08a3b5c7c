"""The document kinds Pagemill accepts, recognised from their first bytes.

The type of an upload is decided here and only here, from content: file names and Content-Type headers are
chosen by the client and prove nothing.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import IO

from pagemill.documents.audio.formats import MEDIA_TYPES as AUDIO_MEDIA_TYPES
from pagemill.documents.audio.formats import sniff_audio
from pagemill.errors import EmptyFile, UnsupportedType

# PDF readers (pdfium among them) accept a header anywhere in the first 1024 bytes; 4 KiB also covers the
# first entries of a zip, where the names that tell docx, xlsx and pptx apart usually sit.
SNIFF_BYTES = 4096
_PDF_HEADER_WINDOW = 1024
_CONTENT_TYPES_MAX_BYTES = 1024 * 1024

WholeFile = Callable[[], AbstractContextManager[IO[bytes]]]
"""Opens the whole upload (seekable) when its first bytes do not decide: a zip's type is in its directory,
at the end of the file, and so are an OLE2 file's stream names."""


class DocumentKind(StrEnum):
    """An accepted input type."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    WEBP = "webp"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    ODT = "odt"
    ODP = "odp"
    ODS = "ods"
    HTML = "html"
    EPUB = "epub"
    EML = "eml"
    ENCRYPTED_OOXML = "ooxml-encrypted"
    """A password-protected DOCX, XLSX or PPTX (an OLE2 file holding an EncryptedPackage)."""
    DOC = "doc"
    XLS = "xls"
    PPT = "ppt"
    RTF = "rtf"
    # Recordings (pagemill.documents.audio): audio containers, and video containers read for their audio.
    WAV = "wav"
    MP3 = "mp3"
    AAC = "aac"
    M4A = "m4a"
    MP4 = "mp4"
    OGG = "ogg"
    FLAC = "flac"
    WEBM = "webm"
    MKV = "mkv"

    @property
    def media_type(self) -> str:
        """The IANA media type of this kind."""
        return _MEDIA_TYPES[self]

    @property
    def is_image(self) -> bool:
        """True for raster image kinds."""
        return self in _IMAGES

    @property
    def is_office(self) -> bool:
        """True for structured documents read by :mod:`pagemill.documents.office` (no text layer, no
        rendering: their pages are slides, sheets, chapters or the whole document)."""
        return self is not DocumentKind.PDF and self not in _IMAGES and self not in _AUDIO

    @property
    def is_audio(self) -> bool:
        """True for recordings: transcribed piece by piece (pagemill.documents.audio), not read as pages."""
        return self in _AUDIO

    @property
    def is_legacy(self) -> bool:
        """Binary office formats converted by LibreOffice before they are read."""
        return self in _LEGACY


_IMAGES = frozenset({DocumentKind.PNG, DocumentKind.JPEG, DocumentKind.TIFF, DocumentKind.WEBP})
_LEGACY = frozenset({DocumentKind.DOC, DocumentKind.XLS, DocumentKind.PPT, DocumentKind.RTF})
_AUDIO = frozenset(DocumentKind(container) for container in AUDIO_MEDIA_TYPES)
_OOXML = "application/vnd.openxmlformats-officedocument"
_ODF = "application/vnd.oasis.opendocument"
_MEDIA_TYPES: dict[DocumentKind, str] = {
    DocumentKind.PDF: "application/pdf",
    DocumentKind.PNG: "image/png",
    DocumentKind.JPEG: "image/jpeg",
    DocumentKind.TIFF: "image/tiff",
    DocumentKind.WEBP: "image/webp",
    DocumentKind.DOCX: f"{_OOXML}.wordprocessingml.document",
    DocumentKind.PPTX: f"{_OOXML}.presentationml.presentation",
    DocumentKind.XLSX: f"{_OOXML}.spreadsheetml.sheet",
    DocumentKind.ODT: f"{_ODF}.text",
    DocumentKind.ODP: f"{_ODF}.presentation",
    DocumentKind.ODS: f"{_ODF}.spreadsheet",
    DocumentKind.HTML: "text/html",
    DocumentKind.EPUB: "application/epub+zip",
    DocumentKind.EML: "message/rfc822",
    DocumentKind.ENCRYPTED_OOXML: "application/x-ole-storage",
    DocumentKind.DOC: "application/msword",
    DocumentKind.XLS: "application/vnd.ms-excel",
    DocumentKind.PPT: "application/vnd.ms-powerpoint",
    DocumentKind.RTF: "application/rtf",
    **{DocumentKind(container): media_type for container, media_type in AUDIO_MEDIA_TYPES.items()},
}

# The `mimetype` member that ODF and EPUB store first, uncompressed, so its value is in the first bytes.
_ZIP_MIMETYPES: dict[bytes, DocumentKind] = {
    f"{_ODF}.text".encode(): DocumentKind.ODT,
    f"{_ODF}.presentation".encode(): DocumentKind.ODP,
    f"{_ODF}.spreadsheet".encode(): DocumentKind.ODS,
    b"application/epub+zip": DocumentKind.EPUB,
}
# The main part of each OOXML package, by name (first bytes) and by content type ([Content_Types].xml).
_OOXML_MAIN_PARTS: tuple[tuple[str, DocumentKind], ...] = (
    ("word/document.xml", DocumentKind.DOCX),
    ("ppt/presentation.xml", DocumentKind.PPTX),
    ("xl/workbook.xml", DocumentKind.XLSX),
)
_OOXML_CONTENT_TYPES: tuple[tuple[bytes, DocumentKind], ...] = (
    (b"wordprocessingml.document.main+xml", DocumentKind.DOCX),
    (b"wordprocessingml.template.main+xml", DocumentKind.DOCX),
    (b"ms-word.document.macroEnabled.main+xml", DocumentKind.DOCX),
    (b"ms-word.template.macroEnabledTemplate.main+xml", DocumentKind.DOCX),
    (b"presentationml.presentation.main+xml", DocumentKind.PPTX),
    (b"presentationml.slideshow.main+xml", DocumentKind.PPTX),
    (b"presentationml.template.main+xml", DocumentKind.PPTX),
    (b"ms-powerpoint.presentation.macroEnabled.main+xml", DocumentKind.PPTX),
    (b"ms-powerpoint.slideshow.macroEnabled.main+xml", DocumentKind.PPTX),
    (b"spreadsheetml.sheet.main+xml", DocumentKind.XLSX),
    (b"spreadsheetml.template.main+xml", DocumentKind.XLSX),
    (b"ms-excel.sheet.macroEnabled.main+xml", DocumentKind.XLSX),
    (b"ms-excel.template.macroEnabled.main+xml", DocumentKind.XLSX),
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An OLE2 file is told apart by the streams in its directory.
_OLE2_STREAMS: tuple[tuple[str, DocumentKind], ...] = (
    ("EncryptedPackage", DocumentKind.ENCRYPTED_OOXML),
    ("WordDocument", DocumentKind.DOC),
    ("Workbook", DocumentKind.XLS),
    ("Book", DocumentKind.XLS),
    ("PowerPoint Document", DocumentKind.PPT),
)
# RFC 5322 header fields that open a message (one of them names it a message together with another).
_MAIL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "reply-to",
        "delivered-to",
        "content-type",
        "x-mailer",
        "sender",
        "in-reply-to",
        "references",
    }
)
_HEADER_LINE = re.compile(rb"^([A-Za-z0-9][A-Za-z0-9-]{0,75}):[ \t]?")
_HTML_START = re.compile(
    rb"^(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.S
)


# Formats we recognise only to name them in the error, so a client learns what it sent.
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"\x1f\x8b", "gzip"),
    (b"%!PS", "postscript"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"Rar!", "rar"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def sniff(head: bytes, whole: WholeFile | None = None) -> DocumentKind:
    """Return the kind of a document from its first ``SNIFF_BYTES`` bytes, and from its zip or OLE2
    directory (opened through ``whole``) when those bytes do not decide.

    Raises ``EmptyFile`` for no bytes and ``UnsupportedType`` (``details["detected"]`` names what was
    recognised, or is None) for anything that is not an accepted kind.
    """
    if not head:
        raise EmptyFile()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocumentKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return DocumentKind.JPEG
    # Classic TIFF (42) and BigTIFF (43), both byte orders.
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return DocumentKind.TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DocumentKind.WEBP
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(head, whole)
    if head.startswith(_OLE2_MAGIC):
        return _sniff_ole2(whole)
    # Checked after the images so a PNG holding the text "%PDF-" in a chunk stays a PNG.
    if b"%PDF-" in head[: _PDF_HEADER_WINDOW + 4]:
        return DocumentKind.PDF
    if head.startswith(b"{\\rtf"):
        return DocumentKind.RTF
    audio = sniff_audio(head)
    if audio is not None:
        return DocumentKind(audio)
    text = head.removeprefix(b"\xef\xbb\xbf")
    if _HTML_START.match(text.lstrip().lower()):
        return DocumentKind.HTML
    if _is_mail(text):
        return DocumentKind.EML
    raise UnsupportedType(detected=_name_other(head))


def sniff_file(fileobj: IO[bytes]) -> DocumentKind:
    """:func:`sniff` on a seekable file (left at an unknown position)."""
    fileobj.seek(0)
    return sniff(fileobj.read(SNIFF_BYTES), lambda: _Borrowed(fileobj))


class _Borrowed(AbstractContextManager[IO[bytes]]):
    """A caller's open file lent to :func:`sniff`: rewound, and left open afterwards."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj

    def __enter__(self) -> IO[bytes]:
        self._fileobj.seek(0)
        return self._fileobj

    def __exit__(self, *exc: object) -> None:
        return None


def _sniff_zip(head: bytes, whole: WholeFile | None) -> DocumentKind:
    # ODF and EPUB: `mimetype` must be the first member, stored, so its value follows its local header.
    if head[26:28] == b"\x08\x00" and head[30:38] == b"mimetype":
        extra = int.from_bytes(head[28:30], "little")
        value = head[38 + extra : 38 + extra + 80]
        for mimetype, kind in _ZIP_MIMETYPES.items():
            if value.startswith(mimetype) and value[len(mimetype) : len(mimetype) + 1] in (b"", b"P"):
                return kind
    if whole is not None:
        with whole() as fileobj:
            try:
                with zipfile.ZipFile(fileobj) as archive:
                    return _zip_directory_kind(archive)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, RuntimeError):
                pass  # no readable directory (a truncated file): the first bytes may still say what it is
    # The main part's name in a local header: the reader checks the rest (a truncated DOCX is CORRUPT_FILE).
    for name, kind in _OOXML_MAIN_PARTS:
        if name.encode() in head:
            return kind
    raise UnsupportedType(detected="zip")


def _zip_directory_kind(archive: zipfile.ZipFile) -> DocumentKind:
    names = set(archive.namelist())
    if "[Content_Types].xml" in names:
        info = archive.getinfo("[Content_Types].xml")
        if info.file_size <= _CONTENT_TYPES_MAX_BYTES:
            with archive.open(info) as member:
                types = member.read(_CONTENT_TYPES_MAX_BYTES)
            for marker, kind in _OOXML_CONTENT_TYPES:
                if marker in types:
                    return kind
        raise UnsupportedType(detected="ooxml")
    if "mimetype" in names and archive.getinfo("mimetype").file_size <= 200:
        value = archive.read("mimetype").strip()
        if value in _ZIP_MIMETYPES:
            return _ZIP_MIMETYPES[value]
        raise UnsupportedType(detected=value.decode("ascii", "replace")[:80] or "zip")
    for name, kind in _OOXML_MAIN_PARTS:
        if name in names:
            raise UnsupportedType(detected=kind.value)  # its package has no content types: not a real one
    raise UnsupportedType(detected="zip")


def _sniff_ole2(whole: WholeFile | None) -> DocumentKind:
    if whole is None:
        raise UnsupportedType(detected="ole2")
    import olefile  # type: ignore[import-untyped, unused-ignore]

    with whole() as fileobj:
        try:
            ole = olefile.OleFileIO(fileobj)
        except (OSError, ValueError, IndexError, TypeError, RecursionError):
            raise UnsupportedType(detected="ole2") from None
        try:
            streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=False)}
        except (OSError, ValueError, IndexError, TypeError, RecursionError):
            raise UnsupportedType(detected="ole2") from None
        finally:
            ole.close()
    for stream, kind in _OLE2_STREAMS:
        if stream in streams:
            return kind
    raise UnsupportedType(detected="ole2")


def _is_mail(text: bytes) -> bool:
    """True when ``text`` opens with an RFC 5322 header block holding at least two message fields."""
    known = 0
    lines = text.split(b"\n")
    for number, line in enumerate(lines[:-1] if len(lines) > 1 else lines):
        line = line.rstrip(b"\r")
        if not line:
            return known >= 2 and number >= 2
        if line[:1] in (b" ", b"\t") and number:
            continue  # a folded continuation of the field above
        match = _HEADER_LINE.match(line)
        if match is None:
            return False
        if match.group(1).decode().lower() in _MAIL_HEADERS:
            known += 1
    return known >= 3


def _name_other(head: bytes) -> str | None:
    """Best-effort name of an unsupported format, for the error details."""
    for magic, name in _KNOWN_OTHERS:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "heif" if head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif") else "mp4"
    stripped = head.lstrip()[:256].lower()
    if stripped.startswith((b"<?xml", b"<svg")):
        return "svg" if b"<svg" in head.lower() else "xml"
    return None
