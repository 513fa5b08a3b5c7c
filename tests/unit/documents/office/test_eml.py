"""The e-mail reader: messages built at test time with email.message.EmailMessage."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import docx
import pytest
from PIL import Image as PILImage

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.blocks import Attachment, Heading, Image, Paragraph
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.readers import read_office
from pagemill.documents.office.render import page_markdown
from pagemill.errors import ArchiveBomb, CorruptFile
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HEADERS = [
    Heading("Café report", 1),
    Paragraph("From: Ann Example <ann@example.com>", "**From:** Ann Example <ann@example.com>"),
    Paragraph("To: bob@example.com, Zoë <zoe@example.org>", "**To:** bob@example.com, Zoë <zoe@example.org>"),
    Paragraph("Cc: carl@example.net", "**Cc:** carl@example.net"),
    Paragraph("Date: Mon, 01 Jan 2024 10:00:00 +0000", "**Date:** Mon, 01 Jan 2024 10:00:00 +0000"),
]


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


def _docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly numbers", 1)
    document.add_paragraph("Revenue went up.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _message(*, html: bool = True) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "=?utf-8?q?Caf=C3=A9_report?="
    message["From"] = "Ann Example <ann@example.com>"
    message["To"] = "bob@example.com, =?utf-8?q?Zo=C3=AB?= <zoe@example.org>"
    message["Cc"] = "carl@example.net"
    message["Date"] = "Mon, 1 Jan 2024 10:00:00 +0000"
    message.set_content("Hello Bob,\n\nThe plain version.\n\n> quoted line\n# not a heading\n")
    if html:
        message.add_alternative(
            "<html><head><title>ignored</title></head><body><h2>Report</h2>"
            '<p>Hello <b>Bob</b>, see <a href="https://example.com/r">the site</a>.</p>'
            '<img src="cid:logo@example" alt="Logo"><img src="cid:unknown@example"></body></html>',
            subtype="html",
        )
        alternatives = message.get_payload()
        assert isinstance(alternatives, list)
        html_part = alternatives[1]
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(_png(), "image", "png", cid="<logo@example>")
    return message


def _write(tmp_path: Path, message: EmailMessage | bytes) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(message if isinstance(message, bytes) else bytes(message))
    return path


def _read(path: Path, attachments: str = "list") -> OfficeDocument:
    options = ReadOptions(attachments=attachments)  # type: ignore[arg-type]
    document = read_office(path, DocumentKind.EML, options, LIMITS)
    assert document.reader == "eml"
    return document


def test_html_body_headers_and_cid_picture(tmp_path: Path) -> None:
    path = _write(tmp_path, _message())
    with path.open("rb") as fileobj:
        assert sniff_file(fileobj) is DocumentKind.EML
    document = _read(path)
    (page,) = document.pages
    assert (page.kind, page.title) == ("message", "Café report")
    assert page.blocks == [
        *HEADERS,
        Heading("Report", 2),
        Paragraph("Hello Bob, see the site.", "Hello **Bob**, see [the site](https://example.com/r)."),
        Image(ref="part:1", alt="Logo"),
        Image(ref=None),
    ]
    assert document.image_bytes("part:1") == _png()
    assert page_markdown(page).startswith("# Café report\n\n**From:** Ann Example <ann@example.com>\n\n")


def test_plain_text_body_paragraphs(tmp_path: Path) -> None:
    document = _read(_write(tmp_path, _message(html=False)))
    assert document.pages[0].blocks[len(HEADERS) :] == [
        Paragraph("Hello Bob,"),
        Paragraph("The plain version."),
        Paragraph("> quoted line\n# not a heading", "> quoted line\n\\# not a heading"),
    ]


def test_latin1_plain_body_and_encoded_attachment_name(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "=?iso-8859-1?q?R=E9sum=E9?="
    message["From"] = "a@example.com"
    message.set_content("Caf\xe9 cr\xe8me", charset="iso-8859-1", cte="quoted-printable")
    message.add_attachment(
        b"data", maintype="application", subtype="octet-stream", filename="r\xe9sum\xe9.bin"
    )
    blocks = _read(_write(tmp_path, message)).pages[0].blocks
    assert blocks == [
        Heading("Résumé", 1),
        Paragraph("From: a@example.com", "**From:** a@example.com"),
        Paragraph("Café crème"),
        Attachment("résumé.bin", "application/octet-stream", 4),
    ]


def _with_attachments() -> EmailMessage:
    message = _message()
    message.add_attachment(
        _docx(), maintype="application", subtype=DOCX_TYPE.split("/")[1], filename="q.docx"
    )
    message.add_attachment(b"%PDF-1.4\n%fake\n", maintype="application", subtype="pdf", filename="scan.pdf")
    message.add_attachment(
        b"<html><body><h1>Agenda</h1><p>Item</p></body></html>",
        maintype="text",
        subtype="html",
        filename="a.html",
    )
    inner = EmailMessage()
    inner["Subject"] = "Forwarded"
    inner["From"] = "fwd@example.com"
    inner.set_content("Inner body.")
    inner.add_attachment(
        b"<html><body><p>deeper</p></body></html>", maintype="text", subtype="html", filename="d.html"
    )
    message.add_attachment(inner)
    return message


def test_attachments_listed(tmp_path: Path) -> None:
    blocks = _read(_write(tmp_path, _with_attachments())).pages[0].blocks
    listed = [block for block in blocks if isinstance(block, Attachment)]
    assert [(a.name, a.media_type) for a in listed] == [
        ("q.docx", DOCX_TYPE),
        ("scan.pdf", "application/pdf"),
        ("a.html", "text/html"),
        ("Forwarded.eml", "message/rfc822"),
    ]
    assert [a.size for a in listed[:3]] == [len(_docx()), 15, 52]
    assert listed[3].size is not None and listed[3].size > 100
    assert not any(isinstance(b, Heading) and b.text.startswith("Attachment:") for b in blocks)


def test_attachments_converted_one_level_deep(tmp_path: Path) -> None:
    document = _read(_write(tmp_path, _with_attachments()), attachments="convert")
    blocks = document.pages[0].blocks
    start = next(
        i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.text.startswith("Attachment:")
    )
    converted = blocks[start:]
    assert converted == [
        Heading("Attachment: q.docx", 2),
        Heading("Quarterly numbers", 1),
        Paragraph("Revenue went up."),
        # scan.pdf is listed only
        Heading("Attachment: a.html", 2),
        Heading("Agenda", 1),
        Paragraph("Item"),
        Heading("Attachment: Forwarded.eml", 2),
        Heading("Forwarded", 1),
        Paragraph("From: fwd@example.com", "**From:** fwd@example.com"),
        Paragraph("Inner body."),
        Attachment("d.html", "text/html", 39),  # listed, never converted: one level only
    ]


def test_damaged_attachment_is_noted_not_fatal(tmp_path: Path) -> None:
    message = _message(html=False)
    broken = _docx()[:2000]  # a zip without its central directory
    message.add_attachment(broken, maintype="application", subtype="zip", filename="broken.docx")
    message.add_attachment(
        b"<html><body>" + b"<div>" * 300 + b"</body></html>",
        maintype="text",
        subtype="html",
        filename="deep.html",
    )
    blocks = _read(_write(tmp_path, message), attachments="convert").pages[0].blocks
    assert blocks[-6:] == [
        Attachment("broken.docx", "application/zip", 2000),
        Attachment("deep.html", "text/html", 1526),
        Heading("Attachment: broken.docx", 2),
        Paragraph("The attachment could not be read: The file is not a complete zip archive."),
        Heading("Attachment: deep.html", 2),
        Paragraph("The attachment could not be read: The HTML nests elements deeper than allowed."),
    ]


def _multipart(count: int) -> bytes:
    head = b"From: a@example.com\nTo: b@example.com\nSubject: many\nMIME-Version: 1.0\n"
    head += b'Content-Type: multipart/mixed; boundary="XX"\n\n'
    part = b"--XX\nContent-Type: application/octet-stream\nContent-Disposition: attachment\n\nx\n"
    return head + part * count + b"--XX--\n"


def test_too_many_parts_is_refused(tmp_path: Path) -> None:
    blocks = _read(_write(tmp_path, _multipart(998))).pages[0].blocks
    assert sum(isinstance(block, Attachment) for block in blocks) == 998
    with pytest.raises(ArchiveBomb):
        _read(_write(tmp_path, _multipart(1000)))  # with the message itself, 1001 parts


def test_too_many_multipart_declarations_refused_before_parsing(tmp_path: Path) -> None:
    data = b"From: a@example.com\nTo: b@example.com\nSubject: x\n\n" + b"boundary=x\n" * 1001
    with pytest.raises(ArchiveBomb):
        _read(_write(tmp_path, data))


def test_decoded_size_is_capped(tmp_path: Path) -> None:
    message = _message(html=False)
    message.add_attachment(b"x" * 5000, maintype="application", subtype="octet-stream", filename="big.bin")
    path = _write(tmp_path, message)
    with pytest.raises(ArchiveBomb):
        read_office(path, DocumentKind.EML, ReadOptions(), LimitSettings(max_archive_bytes=4096))


def _nested(levels: int) -> bytes:
    data = b"From: a@example.com\nTo: b@example.com\nSubject: deep\nMIME-Version: 1.0\n"
    for level in range(levels):
        data += b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)
    data += b"Content-Type: text/plain\n\nhello\n"
    for level in reversed(range(levels)):
        data += b"--b%d--\n" % level
    return data


@pytest.mark.parametrize("levels", [60, 1000])  # past the reader's cap; past the parser's recursion
def test_deeply_nested_multiparts_are_corrupt(tmp_path: Path, levels: int) -> None:
    assert _read(_write(tmp_path, _nested(20))).pages[0].blocks[-1] == Paragraph("hello")
    with pytest.raises(CorruptFile):
        _read(_write(tmp_path, _nested(levels)))


def test_message_without_headers_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptFile):
        _read(_write(tmp_path, b"\n\njust a body\n"))


def test_huge_header_is_cut(tmp_path: Path) -> None:
    to = ", ".join(f"user{i}@example.com" for i in range(5000))
    data = f"From: a@example.com\nTo: {to}\nSubject: many\n\nbody\n".encode()
    blocks = _read(_write(tmp_path, data)).pages[0].blocks
    to_block = blocks[2]
    assert isinstance(to_block, Paragraph)
    assert to_block.text.startswith("To: user0@example.com, user1@example.com")
    assert to_block.text.endswith("…")
    assert len(to_block.text) < 4100
