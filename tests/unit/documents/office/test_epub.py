"""The EPUB reader: books zipped at test time (mimetype first and stored, container, OPF, XHTML)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.blocks import Cell, Heading, Image, ListItem, Paragraph, Table
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.readers import read_office
from pagemill.documents.office.render import page_markdown
from pagemill.errors import ArchiveBomb, CorruptFile, EncryptedFile, PagemillError
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()
CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Book</dc:title></metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="cover" href="text/cover.xhtml" media-type="application/xhtml+xml"/>
    <item id="c1" href="text/chapter%201.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/>
    <item id="img" href="images/pic.png" media-type="image/png"/>
  </manifest>
  <spine><itemref idref="cover" linear="no"/><itemref idref="c1"/><itemref idref="c2"/></spine>
</package>"""
NAV = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>
<nav epub:type="toc"><ol><li><a href="text/chapter%201.xhtml#start">Chapter One</a></li></ol></nav>
</body></html>"""
XHTML = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head><body>{body}</body></html>"""
CHAPTER_1 = """<h1>The Start</h1><p>It was a dark &amp; stormy night.</p>
<ol start="2"><li>two<ol type="a"><li>two-a</li></ol></li><li>three</li></ol>
<table><tr><th>K</th><th>V</th></tr><tr><td colspan="2">both</td></tr></table>
<p><img src="../images/pic.png" alt="A picture"/><img src="../images/missing.png"/></p>"""
CHAPTER_2 = "<h2>Second</h2><p>More <em>text</em>.</p>"
COVER = '<div><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">' + (
    '<image xlink:href="../images/pic.png"/></svg></div>'
)


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (5, 5), "green").save(buffer, "PNG")
    return buffer.getvalue()


def _epub(path: Path, members: dict[str, str | bytes] | None = None, *, drop: tuple[str, ...] = ()) -> Path:
    parts: dict[str, str | bytes] = {
        "META-INF/container.xml": CONTAINER,
        "OEBPS/content.opf": OPF,
        "OEBPS/nav.xhtml": NAV,
        "OEBPS/text/cover.xhtml": XHTML.format(title="Cover", body=COVER),
        "OEBPS/text/chapter 1.xhtml": XHTML.format(title="ch1", body=CHAPTER_1),
        "OEBPS/text/c2.xhtml": XHTML.format(title="ch2", body=CHAPTER_2),
        "OEBPS/images/pic.png": _png(),
    }
    parts.update(members or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED
        )
        for name, data in parts.items():
            if name not in drop:
                archive.writestr(name, data)
    return path


def _read(path: Path) -> list[object]:
    return list(read_office(path, DocumentKind.EPUB, ReadOptions(), LIMITS).pages)


def test_spine_order_titles_and_blocks(tmp_path: Path) -> None:
    path = _epub(tmp_path / "book.epub")
    with path.open("rb") as fileobj:
        assert sniff_file(fileobj) is DocumentKind.EPUB
    document = read_office(path, DocumentKind.EPUB, ReadOptions(), LIMITS)
    assert document.reader == "epub"
    first, second, cover = document.pages
    assert [(p.kind, p.title) for p in document.pages] == [
        ("chapter", "Chapter One"),  # the table of contents names it
        ("chapter", "Second"),  # its first heading does
        ("chapter", "Cover"),  # linear="no": after the reading order; its <title>
    ]
    assert first.blocks == [
        Heading("The Start", 1),
        Paragraph("It was a dark & stormy night."),
        ListItem("two", 0, True, "2."),
        ListItem("two-a", 1, True, "a."),
        ListItem("three", 0, True, "3."),
        Table(
            cells=[
                Cell("K", 0, 0, header=True),
                Cell("V", 0, 1, header=True),
                Cell("both", 1, 0, col_span=2),
            ],
            n_rows=2,
            n_cols=2,
            header_rows=1,
        ),
        Image(ref="OEBPS/images/pic.png", alt="A picture", name="pic.png"),
        Image(ref=None, name="missing.png"),
    ]
    assert page_markdown(second) == "## Second\n\nMore *text*."
    assert cover.blocks == [Image(ref="OEBPS/images/pic.png", name="pic.png")]
    assert document.image_bytes("OEBPS/images/pic.png") == _png()
    with pytest.raises(CorruptFile):
        document.image_bytes("OEBPS/content.opf")  # only the book's pictures load


def test_ncx_titles_and_html_entities_in_xhtml(tmp_path: Path) -> None:
    opf = OPF.replace('properties="nav"', "").replace("<spine>", '<spine toc="ncx">')
    opf = opf.replace(
        "</manifest>", '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/></manifest>'
    )
    ncx = """<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><navMap>
      <navPoint id="p1"><navLabel><text>Part II</text></navLabel><content src="text/c2.xhtml"/></navPoint>
    </navMap></ncx>"""
    chapter = XHTML.format(title="t", body="<p>caf&eacute;&nbsp;au lait</p>").replace(
        "<!DOCTYPE html>",
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">',
    )
    path = _epub(
        tmp_path / "book.epub",
        {"OEBPS/content.opf": opf, "OEBPS/toc.ncx": ncx, "OEBPS/text/c2.xhtml": chapter},
    )
    pages = read_office(path, DocumentKind.EPUB, ReadOptions(), LIMITS).pages
    assert [p.title for p in pages] == ["The Start", "Part II", "Cover"]
    assert pages[1].blocks == [Paragraph("café au lait")]


def test_broken_xhtml_is_read_leniently(tmp_path: Path) -> None:
    path = _epub(tmp_path / "book.epub", {"OEBPS/text/c2.xhtml": "<html><body><p>unclosed<p>next<br></body>"})
    pages = read_office(path, DocumentKind.EPUB, ReadOptions(), LIMITS).pages
    assert pages[1].blocks == [Paragraph("unclosed"), Paragraph("next")]


def test_truncated_epub_is_corrupt(tmp_path: Path) -> None:
    path = _epub(tmp_path / "book.epub")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFile) as caught:
        _read(path)
    assert caught.value.code == "CORRUPT_FILE"


def test_missing_container_is_corrupt(tmp_path: Path) -> None:
    path = _epub(tmp_path / "book.epub", drop=("META-INF/container.xml",))
    with pytest.raises(CorruptFile) as caught:
        _read(path)
    assert caught.value.code == "CORRUPT_FILE"


@pytest.mark.parametrize(
    ("members", "drop"),
    [
        ({}, ("OEBPS/content.opf",)),  # the package the container names
        ({}, ("OEBPS/text/c2.xhtml",)),  # a chapter of the spine
        ({"OEBPS/content.opf": "<package><manifest>"}, ()),  # malformed XML
        ({"META-INF/container.xml": "<container/>"}, ()),  # no rootfile
        ({"OEBPS/content.opf": OPF.split("<spine>")[0] + "</package>"}, ()),  # no spine
        (
            {"OEBPS/content.opf": OPF.split("<spine>")[0] + '<spine><itemref idref="x"/></spine></package>'},
            (),
        ),
    ],
)
def test_damaged_packages_are_corrupt(
    tmp_path: Path, members: dict[str, str | bytes], drop: tuple[str, ...]
) -> None:
    with pytest.raises(CorruptFile):
        _read(_epub(tmp_path / "book.epub", members, drop=drop))


def test_entity_declarations_in_a_chapter_are_refused(tmp_path: Path) -> None:
    laughs = '<!DOCTYPE html [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    chapter = XHTML.format(title="t", body="<p>&b;</p>").replace("<!DOCTYPE html>", laughs)
    with pytest.raises(ArchiveBomb):
        _read(_epub(tmp_path / "book.epub", {"OEBPS/text/c2.xhtml": chapter}))


def test_drm_encrypted_chapters_are_refused(tmp_path: Path) -> None:
    encryption = """<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
      xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>
      <enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <enc:CipherData><enc:CipherReference URI="OEBPS/text/c2.xhtml"/></enc:CipherData>
    </enc:EncryptedData></encryption>"""
    with pytest.raises(EncryptedFile):
        _read(_epub(tmp_path / "book.epub", {"META-INF/encryption.xml": encryption}))


def test_unsafe_member_names_are_refused(tmp_path: Path) -> None:
    path = _epub(tmp_path / "book.epub")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../evil.xhtml", "<p>x</p>")
    with pytest.raises(PagemillError) as caught:
        _read(path)
    assert caught.value.code == "ARCHIVE_BOMB"
