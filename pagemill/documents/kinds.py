"""The document kinds Pagemill accepts, recognised from their first bytes.

The type of an upload is decided here and only here, from content: file names and Content-Type headers are
chosen by the client and prove nothing.
"""

from __future__ import annotations

from enum import StrEnum

from pagemill.errors import EmptyFile, UnsupportedType

# PDF readers (pdfium among them) accept a header anywhere in the first 1024 bytes; 4 KiB also covers the
# first entries of a zip, where the names that tell docx, xlsx and pptx apart usually sit.
SNIFF_BYTES = 4096
_PDF_HEADER_WINDOW = 1024


class DocumentKind(StrEnum):
    """An accepted input type."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    WEBP = "webp"

    @property
    def media_type(self) -> str:
        """The IANA media type of this kind."""
        return _MEDIA_TYPES[self]

    @property
    def is_image(self) -> bool:
        """True for raster image kinds (everything but PDF)."""
        return self is not DocumentKind.PDF


_MEDIA_TYPES: dict[DocumentKind, str] = {
    DocumentKind.PDF: "application/pdf",
    DocumentKind.PNG: "image/png",
    DocumentKind.JPEG: "image/jpeg",
    DocumentKind.TIFF: "image/tiff",
    DocumentKind.WEBP: "image/webp",
}

# Formats we recognise only to name them in the error, so a client learns what it sent.
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"\x1f\x8b", "gzip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2"),  # legacy .doc/.xls/.ppt
    (b"{\\rtf", "rtf"),
    (b"%!PS", "postscript"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"Rar!", "rar"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def sniff(head: bytes) -> DocumentKind:
    """Return the kind of a document from its first ``SNIFF_BYTES`` bytes.

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
    # Checked after the images so a PNG holding the text "%PDF-" in a chunk stays a PNG.
    if b"%PDF-" in head[: _PDF_HEADER_WINDOW + 4]:
        return DocumentKind.PDF
    raise UnsupportedType(detected=_name_other(head))


def _name_other(head: bytes) -> str | None:
    """Best-effort name of an unsupported format, for the error details."""
    if head.startswith(b"PK\x03\x04"):
        # OOXML parts live under word/, xl/ or ppt/; zip entry names are stored in clear text.
        for marker, name in ((b"word/", "docx"), (b"xl/", "xlsx"), (b"ppt/", "pptx")):
            if marker in head:
                return name
        return "zip"
    for magic, name in _KNOWN_OTHERS:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "heif" if head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif") else "mp4"
    stripped = head.lstrip()[:256].lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "html"
    if stripped.startswith((b"<?xml", b"<svg")):
        return "svg" if b"<svg" in head.lower() else "xml"
    return None
