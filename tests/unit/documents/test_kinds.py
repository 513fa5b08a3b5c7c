"""Content sniffing: the kind comes from the bytes, never the name."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pagemill.documents.kinds import SNIFF_BYTES, DocumentKind, sniff
from pagemill.errors import EmptyFile, UnsupportedType
from tests.support.documents import (
    make_encrypted_pdf,
    make_multiframe_tiff,
    make_pdf_named_png,
    make_png_bomb,
    make_scanned_pdf,
    make_text_image,
    make_text_pdf,
)


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(SNIFF_BYTES)


MAKERS: list[tuple[str, Callable[[Path], Path], DocumentKind]] = [
    ("text-pdf", lambda p: make_text_pdf(p / "a.pdf", ["Hello"]), DocumentKind.PDF),
    ("scanned-pdf", lambda p: make_scanned_pdf(p / "a.pdf", ["Hello"]), DocumentKind.PDF),
    ("encrypted-pdf", lambda p: make_encrypted_pdf(p / "a.pdf", "pw"), DocumentKind.PDF),
    ("pdf-named-png", lambda p: make_pdf_named_png(p / "a.png"), DocumentKind.PDF),
    ("png", lambda p: make_text_image(p / "a.bin", "Hi", "PNG"), DocumentKind.PNG),
    ("jpeg", lambda p: make_text_image(p / "a.png", "Hi", "JPEG"), DocumentKind.JPEG),
    ("tiff", lambda p: make_text_image(p / "a.jpg", "Hi", "TIFF"), DocumentKind.TIFF),
    ("webp", lambda p: make_text_image(p / "a.pdf", "Hi", "WEBP"), DocumentKind.WEBP),
    ("multiframe-tiff", lambda p: make_multiframe_tiff(p / "a.tif", ["a", "b"]), DocumentKind.TIFF),
    ("png-bomb", lambda p: make_png_bomb(p / "a.png", 60000, 60000), DocumentKind.PNG),
]


@pytest.mark.parametrize(("maker", "expected"), [(m, k) for _, m, k in MAKERS], ids=[n for n, _, _ in MAKERS])
def test_sniffs_kind_from_content(
    tmp_path: Path, maker: Callable[[Path], Path], expected: DocumentKind
) -> None:
    assert sniff(_head(maker(tmp_path))) is expected


def test_media_types() -> None:
    assert all(kind.media_type for kind in DocumentKind)
    assert {
        kind.value: kind.media_type for kind in DocumentKind if not kind.is_office and not kind.is_audio
    } == {
        "pdf": "application/pdf",
        "png": "image/png",
        "jpeg": "image/jpeg",
        "tiff": "image/tiff",
        "webp": "image/webp",
    }
    assert DocumentKind.DOCX.media_type.endswith("wordprocessingml.document")
    assert DocumentKind.EML.media_type == "message/rfc822"


def test_empty_is_empty_file() -> None:
    with pytest.raises(EmptyFile) as info:
        sniff(b"")
    assert info.value.code == "EMPTY_FILE"


def test_pdf_header_accepted_within_first_kilobyte() -> None:
    # Readers accept junk before the header (mail gateways prepend some); pdfium looks in 1024 bytes.
    assert sniff(b"\x00" * 1000 + b"%PDF-1.4\n") is DocumentKind.PDF
    assert len(b"%PDF-") + 1024 <= SNIFF_BYTES
    with pytest.raises(UnsupportedType):
        sniff(b"\x00" * 1100 + b"%PDF-1.4\n")


def _zip(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<xml/>")
    return buffer.getvalue()[:SNIFF_BYTES]


@pytest.mark.parametrize(
    ("head", "detected"),
    [
        (_zip(["notes.txt"]), "zip"),
        (b"GIF89a\x01\x00\x01\x00", "gif"),
        # Without the whole file, an OLE2 file's streams (DOC, XLS, PPT, encrypted OOXML) are not known.
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "ole2"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "svg"),
        (b"hello, plain text", None),
        (b"This is not a valid PDF", None),
    ],
    ids=["zip", "gif", "ole2", "svg", "text", "not-a-pdf"],
)
def test_unsupported_types_name_what_they_are(head: bytes, detected: str | None) -> None:
    with pytest.raises(UnsupportedType) as info:
        sniff(head)
    assert info.value.code == "UNSUPPORTED_TYPE"
    assert info.value.details == {"detected": detected}
