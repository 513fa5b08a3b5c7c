"""The HTML reader and the shared HTML walk (html_blocks): files written at test time."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image as PILImage

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.blocks import Cell, Code, Heading, Image, ListItem, Paragraph, Table
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.html_blocks import html_blocks
from pagemill.documents.office.readers import read_office
from pagemill.documents.office.render import page_markdown
from pagemill.errors import CorruptFile, TooManyCells
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()


def _blocks(markup: str | bytes) -> list[object]:
    return list(html_blocks(markup, base_ref=None, limits=LIMITS)[0])


def _read(tmp_path: Path, markup: str | bytes) -> tuple[list[object], str]:
    path = tmp_path / "page.html"
    path.write_bytes(markup.encode() if isinstance(markup, str) else markup)
    document = read_office(path, DocumentKind.HTML, ReadOptions(), LIMITS)
    assert document.reader == "html"
    assert len(document.pages) == 1
    return list(document.pages[0].blocks), page_markdown(document.pages[0])


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (3, 2), "blue").save(buffer, "PNG")
    return buffer.getvalue()


def test_page_title_headings_and_inline_markdown(tmp_path: Path) -> None:
    markup = """<!DOCTYPE html><html><head><title> The  Page </title><style>p {}</style>
    <script>document.write("no")</script></head><body>
    <nav><a href="/">Home</a></nav>
    <h1>Main <em>title</em></h1><h3>Third</h3>
    <p>Hello <b>bold</b> and <i> italic </i>, <code>x = 1</code>,
       a <a href="https://example.com/a b">link</a>, <a href="javascript:alert(1)">bad</a>,
       <a href="page2.html">relative</a>, <a href="mailto:ann@example.com">mail</a>.</p>
    <p>A&nbsp;B &amp; C &lt;tag&gt;<br>second line</p>
    </body></html>"""
    path = tmp_path / "page.html"
    path.write_text(markup)
    document = read_office(path, DocumentKind.HTML, ReadOptions(), LIMITS)
    page = document.pages[0]
    assert (page.kind, page.title) == ("document", "The Page")
    assert page.blocks == [
        Heading("Main title", 1, "Main *title*"),
        Heading("Third", 3),
        Paragraph(
            "Hello bold and italic , x = 1, a link, bad, relative, mail.",
            "Hello **bold** and *italic* , `x = 1`, a [link](https://example.com/a%20b), bad, relative, "
            "[mail](mailto:ann@example.com).",
        ),
        Paragraph("A B & C <tag>\nsecond line"),
    ]
    assert page_markdown(page).startswith("# Main *title*\n\n### Third\n\nHello **bold**")


def test_nested_ordered_lists_keep_their_numbers(tmp_path: Path) -> None:
    blocks, markdown = _read(
        tmp_path,
        """<ol start="3" type="a"><li>three<ol type="I"><li>one</li><li value="5">five</li><li>six</li>
        </ol></li><li><p>four</p><p>more</p></li></ol>
        <ol reversed><li>x</li><li>y</li><li>z</li></ol>
        <ul><li>bullet<ul><li>inner</li></ul></li></ul><ol type="i" start="4"><li>iv</li></ol>""",
    )
    assert blocks == [
        ListItem("three", 0, True, "c."),
        ListItem("one", 1, True, "I."),
        ListItem("five", 1, True, "V."),
        ListItem("six", 1, True, "VI."),
        ListItem("four\nmore", 0, True, "d."),
        ListItem("x", 0, True, "3."),
        ListItem("y", 0, True, "2."),
        ListItem("z", 0, True, "1."),
        ListItem("bullet", 0, False, "-"),
        ListItem("inner", 1, False, "-"),
        ListItem("iv", 0, True, "iv."),
    ]
    assert markdown.startswith("c. three\n    I. one\n    V. five\n    VI. six\nd. four more\n3. x")


def test_merged_cells_round_trip(tmp_path: Path) -> None:
    blocks, markdown = _read(
        tmp_path,
        """<table><caption>Prices</caption><thead><tr><th>A</th><th>B</th><th>C</th></tr></thead>
        <tbody><tr><td rowspan="2">x</td><td colspan="2"><b>y</b></td></tr><tr><td>z</td><td></td></tr>
        </tbody></table>""",
    )
    assert blocks == [
        Table(
            cells=[
                Cell("A", 0, 0, header=True),
                Cell("B", 0, 1, header=True),
                Cell("C", 0, 2, header=True),
                Cell("x", 1, 0, row_span=2),
                Cell("y", 1, 1, col_span=2, md="**y**"),
                Cell("z", 2, 1),
                Cell("", 2, 2),
            ],
            n_rows=3,
            n_cols=3,
            header_rows=1,
            caption="Prices",
        )
    ]
    assert markdown == "| A | B | C |\n| - | - | - |\n| x | **y** | **y** |\n| x | z |  |"


def test_header_rows_from_th_and_absurd_spans_capped() -> None:
    (table,) = _blocks(
        '<table><tr><th>h1</th><th>h2</th></tr><tr><td colspan="99999999">wide</td></tr>'
        '<tr><td rowspan="0">down</td><td>b</td></tr><tr><td>c</td></tr></table>'
    )
    assert isinstance(table, Table)
    assert table.header_rows == 1
    assert table.n_cols == 1000
    assert table.cells[3] == Cell("down", 2, 0, row_span=2)
    assert table.cells[5] == Cell("c", 3, 1)


def test_table_over_the_cell_limit_is_refused() -> None:
    rows = '<tr><td colspan="1000" rowspan="1000">x</td><td>y</td></tr>' * 5
    with pytest.raises(TooManyCells):
        html_blocks(f"<table>{rows}</table>", base_ref=None, limits=LimitSettings(max_sheet_cells=10_000))


def test_layout_tables_are_read_as_content() -> None:
    blocks = _blocks(
        "<table><tr><td><h2>Side</h2><table><tr><td>a</td><td>b</td></tr></table></td>"
        "<td><p>Main text</p></td></tr></table><table><tr><td>only cell</td></tr></table>"
    )
    assert blocks == [
        Heading("Side", 2),
        Table(cells=[Cell("a", 0, 0), Cell("b", 0, 1)], n_rows=1, n_cols=2, header_rows=0),
        Paragraph("Main text"),
        Paragraph("only cell"),
    ]


def test_pre_blockquote_and_hidden_content() -> None:
    blocks = _blocks(
        "<pre>\ndef f():\n    return 1 &lt; 2\n</pre>"
        "<blockquote><p>quoted <b>text</b></p><p>two</p></blockquote><div hidden>secret</div>"
        '<div style="color: red; display : none">secret2</div><p style="visibility:hidden">secret3</p>'
        "<noscript>enable js</noscript><template><p>tpl</p></template><svg><text>drawn</text></svg>"
        "<form><input value='field'><button>Go</button></form><p>visible</p>"
    )
    assert blocks == [
        Code("def f():\n    return 1 < 2"),
        Paragraph("quoted text", "> quoted **text**"),
        Paragraph("two", "> two"),
        Paragraph("visible"),
    ]


def test_pictures_data_uri_loads_and_remote_has_no_ref(tmp_path: Path) -> None:
    png = _png()
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    path = tmp_path / "page.html"
    path.write_text(
        f'<p>Before <img src="{uri}" alt="A chart"> after</p><img src="https://example.com/x.png">'
        '<img src="local/y.png" alt="local"><img src="data:text/html,<b>x</b>">'
        '<img src="https://t.example/pixel.gif" width="1" height="1">'
    )
    document = read_office(path, DocumentKind.HTML, ReadOptions(), LIMITS)
    assert document.pages[0].blocks == [
        Paragraph("Before after"),
        Image(ref="data:0", alt="A chart"),
        Image(ref=None, name="x.png"),
        Image(ref=None, alt="local", name="y.png"),
        Image(ref=None),
    ]
    assert document.image_bytes("data:0") == png
    with pytest.raises(CorruptFile):
        document.image_bytes("data:1")


def test_data_pictures_are_capped_by_the_upload_limit() -> None:
    uri = "data:image/png;base64," + base64.b64encode(_png()).decode()
    images: dict[str, bytes] = {}
    blocks, _ = html_blocks(
        f'<img src="{uri}">', base_ref=None, limits=LimitSettings(max_upload_bytes=10), images=images
    )
    assert blocks == [Image(ref=None)]
    assert images == {}


def test_declared_latin1_charset_and_bom(tmp_path: Path) -> None:
    latin = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        "<title>Caf\xe9</title></head><body><p>na\xefve \x93quoted\x94</p></body></html>"
    ).encode("latin-1")
    blocks, _ = _read(tmp_path, latin)
    assert blocks == [Paragraph("na\xefve \u201cquoted\u201d")]
    assert html_blocks(latin, base_ref=None, limits=LIMITS)[1] == "Caf\xe9"
    utf16 = "<html><body><p>\u00e9t\u00e9</p></body></html>".encode("utf-16")
    assert _blocks(utf16) == [Paragraph("\u00e9t\u00e9")]
    assert _blocks(b'<meta charset="no-such-charset"><p>caf\xc3\xa9 \xff</p>') == [
        Paragraph("caf\xe9 \ufffd")
    ]


def test_billion_laughs_doctype_is_not_expanded(tmp_path: Path) -> None:
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    markup = f'<!DOCTYPE html [<!ENTITY l0 "lol">{laughs}]><html><body><p>&l9;</p><p>end</p></body></html>'
    blocks, _ = _read(tmp_path, markup)
    assert blocks == [Paragraph("&l9;"), Paragraph("end")]


def test_deep_nesting_is_refused_without_recursion(tmp_path: Path) -> None:
    levels = 100_000
    with pytest.raises(CorruptFile) as caught:
        _read(tmp_path, "<html><body>" + "<div>" * levels + "x" + "</div>" * levels + "</body></html>")
    assert caught.value.code == "CORRUPT_FILE"
    # 200 levels are fine (libxml2 stops at 256).
    assert _blocks("<div>" * 200 + "deep" + "</div>" * 200) == [Paragraph("deep")]


def test_empty_and_text_only_documents(tmp_path: Path) -> None:
    assert _read(tmp_path, "<html><body></body></html>")[0] == []
    assert html_blocks("", base_ref=None, limits=LIMITS) == ([], None)
    assert _blocks("just text <b>and bold</b>") == [Paragraph("just text and bold", "just text **and bold**")]
