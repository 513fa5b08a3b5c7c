"""Office kinds are sniffed from content: a zip's content types or `mimetype`, markup, mail headers."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from docx import Document

from pagemill.documents.kinds import SNIFF_BYTES, DocumentKind, sniff, sniff_file
from pagemill.errors import UnsupportedType

_CT = '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">{}</Types>'
_OVERRIDE = '<Override PartName="/{part}" ContentType="application/vnd.{type}"/>'


def _ooxml(main_part: str, content_type: str, *, thumbnail_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if thumbnail_first:
            # Some writers put a big thumbnail first: the main part's name is then past the first bytes.
            archive.writestr("docProps/thumbnail.jpeg", bytes(range(256)) * 64, zipfile.ZIP_STORED)
        archive.writestr(
            "[Content_Types].xml", _CT.format(_OVERRIDE.format(part=main_part, type=content_type))
        )
        archive.writestr(main_part, "<x/>")
    return buffer.getvalue()


def _odf(mimetype: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", mimetype, zipfile.ZIP_STORED)
        archive.writestr("content.xml", "<x/>")
    return buffer.getvalue()


def _sniff_bytes(data: bytes) -> DocumentKind:
    return sniff_file(io.BytesIO(data))


OOXML = [
    (
        "word/document.xml",
        "openxmlformats-officedocument.wordprocessingml.document.main+xml",
        DocumentKind.DOCX,
    ),
    ("word/document.xml", "ms-word.document.macroEnabled.main+xml", DocumentKind.DOCX),
    (
        "ppt/presentation.xml",
        "openxmlformats-officedocument.presentationml.presentation.main+xml",
        DocumentKind.PPTX,
    ),
    ("xl/workbook.xml", "openxmlformats-officedocument.spreadsheetml.sheet.main+xml", DocumentKind.XLSX),
    ("xl/workbook.xml", "ms-excel.sheet.macroEnabled.main+xml", DocumentKind.XLSX),
]


@pytest.mark.parametrize(("part", "content_type", "kind"), OOXML, ids=[f"{k}-{t[:12]}" for _, t, k in OOXML])
@pytest.mark.parametrize("thumbnail_first", [False, True])
def test_ooxml_kind_from_its_content_types(
    part: str, content_type: str, kind: DocumentKind, thumbnail_first: bool
) -> None:
    data = _ooxml(part, content_type, thumbnail_first=thumbnail_first)
    assert _sniff_bytes(data) is kind
    if not thumbnail_first:
        # The first bytes alone name the main part: enough where only they are at hand (a finished tus
        # upload); the reader then checks the package.
        assert sniff(data[:SNIFF_BYTES]) is kind


def test_ooxml_whose_name_is_past_the_first_bytes_needs_the_directory() -> None:
    data = _ooxml("word/document.xml", OOXML[0][1], thumbnail_first=True)
    with pytest.raises(UnsupportedType) as info:
        sniff(data[:SNIFF_BYTES])
    assert info.value.details == {"detected": "zip"}


def test_real_docx_from_python_docx(tmp_path: Path) -> None:
    document = Document()
    document.add_paragraph("Hello")
    path = tmp_path / "report.pdf"  # the name lies; the content decides
    document.save(str(path))
    with path.open("rb") as fileobj:
        assert sniff_file(fileobj) is DocumentKind.DOCX


def test_zip_that_only_looks_like_ooxml_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", _CT.format(""))
        archive.writestr("word/document.xml", "<x/>")
    with pytest.raises(UnsupportedType) as info:
        _sniff_bytes(buffer.getvalue())
    assert info.value.details == {"detected": "ooxml"}


@pytest.mark.parametrize(
    ("mimetype", "kind"),
    [
        ("application/vnd.oasis.opendocument.text", DocumentKind.ODT),
        ("application/vnd.oasis.opendocument.presentation", DocumentKind.ODP),
        ("application/vnd.oasis.opendocument.spreadsheet", DocumentKind.ODS),
        ("application/epub+zip", DocumentKind.EPUB),
    ],
)
def test_odf_and_epub_from_their_mimetype_member(mimetype: str, kind: DocumentKind) -> None:
    data = _odf(mimetype)
    assert sniff(data[:SNIFF_BYTES]) is kind
    assert _sniff_bytes(data) is kind


def test_odf_template_and_unknown_mimetypes_are_named() -> None:
    with pytest.raises(UnsupportedType) as info:
        _sniff_bytes(_odf("application/vnd.oasis.opendocument.graphics"))
    assert info.value.details == {"detected": "application/vnd.oasis.opendocument.graphics"}


@pytest.mark.parametrize(
    "head",
    [
        b"<!DOCTYPE html>\n<html><body>x</body></html>",
        b"\xef\xbb\xbf  <html lang='en'><p>x",
        b"<!-- saved from url=(0014)about:internet -->\n<html>",
        b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "x">',
        b"<HTML><HEAD><TITLE>t</TITLE>",
    ],
    ids=["doctype", "bom-html", "comment-first", "xhtml", "upper"],
)
def test_html(head: bytes) -> None:
    assert sniff(head) is DocumentKind.HTML


MAIL = (
    b"Return-Path: <a@example.org>\r\n"
    b"Received: from mx.example.org\r\n\tby mail.example.org; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Ann <a@example.org>\r\nTo: b@example.org\r\nSubject: Hello\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBody\r\n"
)


def test_mail_from_its_header_block() -> None:
    assert sniff(MAIL) is DocumentKind.EML
    assert sniff(b"From: a@example.org\nSubject: x\n\nbody") is DocumentKind.EML


@pytest.mark.parametrize(
    "head",
    [
        b"Subject: only one field\n\nbody",  # one known field is not a message
        b"Name: Ann\nAge: 3\nCity: Paris\n\nprose",  # key-value text, no mail fields
        b"From: a\nthis line is prose, not a header\n\n",
    ],
    ids=["one-field", "key-value-text", "prose-line"],
)
def test_text_that_is_not_mail(head: bytes) -> None:
    with pytest.raises(UnsupportedType):
        sniff(head)


def test_rtf() -> None:
    assert sniff(b"{\\rtf1\\ansi Hello}") is DocumentKind.RTF


def test_ole2_whose_directory_cannot_be_read_is_refused() -> None:
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)
    with pytest.raises(UnsupportedType) as info:
        _sniff_bytes(data)
    assert info.value.details == {"detected": "ole2"}


def test_office_kinds_are_neither_images_nor_pdf() -> None:
    assert DocumentKind.DOCX.is_office and not DocumentKind.DOCX.is_image
    assert DocumentKind.DOC.is_office and DocumentKind.DOC.is_legacy
    assert not DocumentKind.PDF.is_office and not DocumentKind.PNG.is_office
