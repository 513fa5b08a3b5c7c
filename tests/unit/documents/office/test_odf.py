"""What the OpenDocument readers (ODT, ODP, ODS) share: sniffing and reading through the registry, and
hostile packages. Each format's content is tested in test_odf_text.py and test_odf_slides_and_sheets.py."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.document import Reader, ReadOptions
from pagemill.documents.office.odf import read_odp, read_ods, read_odt
from pagemill.documents.office.readers import read_office
from pagemill.documents.office.render import page_markdown
from pagemill.errors import PagemillError
from tests.support.odf_files import BodyKind, content_xml, png_bytes, write_odf
from tests.unit.documents.office.odf_helpers import LIMITS, _code
from tests.unit.documents.office.test_odf_slides_and_sheets import SLIDES, WORKBOOK

# --- through the registry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "body", "expected"),
    [
        (DocumentKind.ODT, "doc.odt", "<text:h>Title</text:h><text:p>Body</text:p>", "# Title\n\nBody"),
        (DocumentKind.ODP, "deck.odp", SLIDES, "# Docling"),
        (DocumentKind.ODS, "book.ods", WORKBOOK, "## Data"),
    ],
)
def test_read_office_sniffs_and_reads(
    tmp_path: Path, kind: DocumentKind, name: str, body: str, expected: str
) -> None:
    kinds: dict[DocumentKind, BodyKind] = {DocumentKind.ODT: "text", DocumentKind.ODP: "presentation"}
    body_kind = kinds.get(kind, "spreadsheet")
    path = write_odf(tmp_path / name, body_kind, body)
    with path.open("rb") as fileobj:
        assert sniff_file(fileobj) is kind
    document = read_office(path, kind, ReadOptions(), LIMITS)
    assert document.reader == kind.value
    assert page_markdown(document.pages[0]).startswith(expected)


# --- hostile files --------------------------------------------------------------------------------

READERS: list[tuple[Reader, BodyKind]] = [
    (read_odt, "text"),
    (read_odp, "presentation"),
    (read_ods, "spreadsheet"),
]
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<office:document-content>&lol3;</office:document-content>"
)


@pytest.mark.parametrize(("reader", "kind"), READERS)
def test_truncated_zip_is_corrupt(tmp_path: Path, reader: Reader, kind: BodyKind) -> None:
    whole = write_odf(tmp_path / "whole", kind, "", members={"Pictures/p.png": png_bytes()}).read_bytes()
    path = tmp_path / "truncated"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PagemillError) as exc:
        reader(path, ReadOptions(), LIMITS)
    assert _code(exc) == "CORRUPT_FILE"


@pytest.mark.parametrize(("reader", "kind"), READERS)
def test_billion_laughs_is_a_bomb(tmp_path: Path, reader: Reader, kind: BodyKind) -> None:
    path = write_odf(tmp_path / "laughs", kind, content=LAUGHS)
    with pytest.raises(PagemillError) as exc:
        reader(path, ReadOptions(), LIMITS)
    assert _code(exc) == "ARCHIVE_BOMB"


@pytest.mark.parametrize(("reader", "kind"), READERS)
def test_missing_content_is_corrupt(tmp_path: Path, reader: Reader, kind: BodyKind) -> None:
    path = write_odf(tmp_path / "empty", kind, with_content=False)
    with pytest.raises(PagemillError) as exc:
        reader(path, ReadOptions(), LIMITS)
    assert _code(exc) == "CORRUPT_FILE"


@pytest.mark.parametrize(("reader", "kind"), READERS)
@pytest.mark.parametrize(
    "content",
    [
        b"<office:document-content><unclosed>",
        b"not xml at all",
        b'<other xmlns="urn:x"/>',
        content_xml("text", "").replace(b"office:text", b"office:drawing"),
    ],
)
def test_malformed_or_foreign_content_is_corrupt(
    tmp_path: Path, reader: Reader, kind: BodyKind, content: bytes
) -> None:
    path = write_odf(tmp_path / "bad", kind, content=content)
    with pytest.raises(PagemillError) as exc:
        reader(path, ReadOptions(), LIMITS)
    assert _code(exc) == "CORRUPT_FILE"


def test_deeply_nested_spans_are_corrupt_not_a_crash(tmp_path: Path) -> None:
    spans = "<text:span>" * 300 + "deep" + "</text:span>" * 300
    path = write_odf(tmp_path / "deep.odt", "text", f"<text:p>{spans}</text:p>")
    with pytest.raises(PagemillError) as exc:
        read_odt(path, ReadOptions(), LIMITS)
    assert _code(exc) == "CORRUPT_FILE"


def test_a_picture_not_in_the_package_is_corrupt(tmp_path: Path) -> None:
    body = '<text:p><draw:frame><draw:image xlink:href="Pictures/p.png"/></draw:frame></text:p>'
    path = write_odf(tmp_path / "pic.odt", "text", body, members={"Pictures/p.png": png_bytes()})
    document = read_odt(path, ReadOptions(), LIMITS)
    assert document.image_bytes("Pictures/p.png") == png_bytes()
    with pytest.raises(PagemillError) as exc:
        document.image_bytes("Pictures/missing.png")
    assert _code(exc) == "CORRUPT_FILE"


@pytest.mark.parametrize(("reader", "kind"), READERS)
def test_damaged_content_member_is_corrupt(tmp_path: Path, reader: Reader, kind: BodyKind) -> None:
    body = "<text:p>x</text:p>" * 2000 if kind == "text" else ""
    path = write_odf(tmp_path / "damaged", kind, body)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("content.xml")
    # Bytes in the middle of the deflated content: the CRC (or the inflater) notices.
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in range(start + 10, start + min(info.compress_size - 4, 60)):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(PagemillError) as exc:
        reader(path, ReadOptions(), LIMITS)
    assert _code(exc) == "CORRUPT_FILE"


def test_entities_declared_after_a_long_prolog_are_a_bomb_in_a_streamed_workbook(tmp_path: Path) -> None:
    declaration = LAUGHS.split(b"?>", 1)[1]
    content = b'<?xml version="1.0"?><!--' + b"x" * 100_000 + b"-->" + declaration
    path = write_odf(tmp_path / "late.ods", "spreadsheet", content=content)
    with pytest.raises(PagemillError) as exc:
        read_ods(path, ReadOptions(), LIMITS)
    assert _code(exc) == "ARCHIVE_BOMB"
