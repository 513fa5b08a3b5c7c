"""The OpenDocument presentation and spreadsheet readers (ODP, ODS) on packages built at test time: one
page per slide or sheet, with titles, hidden pages, tables, pictures, notes and cell limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pagemill.documents.office.blocks import Cell, Heading, Image, ListItem, Note, Paragraph, Table
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.odf import read_odp, read_ods
from pagemill.documents.office.render import page_markdown
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings
from tests.support.odf_files import png_bytes, write_odf
from tests.unit.documents.office.odf_helpers import LIMITS, _code

# --- ODP ------------------------------------------------------------------------------------------

SLIDES_STYLES = """
<style:style style:name="dp2" style:family="drawing-page"><style:drawing-page-properties
  presentation:visibility="hidden"/></style:style>
<text:list-style style:name="L1"><text:list-level-style-bullet text:level="1" text:bullet-char="●"/>
  <text:list-level-style-bullet text:level="2" text:bullet-char="-"/></text:list-style>
<text:list-style style:name="L2"><text:list-level-style-number text:level="1" style:num-suffix="."
  style:num-format="1"/></text:list-style>
"""
SLIDES = """
<draw:page draw:name="page1" draw:style-name="dp1">
  <draw:frame presentation:class="title"><draw:text-box><text:p>Docling</text:p></draw:text-box></draw:frame>
  <draw:frame presentation:class="subtitle"><draw:text-box><text:p>Image test</text:p></draw:text-box>
  </draw:frame>
  <draw:frame presentation:class="outline" presentation:placeholder="true"><draw:text-box/></draw:frame>
  <draw:frame presentation:class="outline"><draw:text-box><text:list text:style-name="L1">
    <text:list-item><text:p>Point one</text:p>
    <text:list><text:list-item><text:p>Sub point</text:p></text:list-item>
    </text:list></text:list-item></text:list></draw:text-box></draw:frame>
  <draw:frame draw:name="Picture 1"><draw:image
    xlink:href="Pictures/p.png"/><svg:desc>A red box</svg:desc></draw:frame>
  <draw:g><draw:custom-shape><draw:enhanced-geometry/><text:p>Shape text</text:p></draw:custom-shape></draw:g>
  <anim:par><anim:seq/></anim:par>
  <presentation:notes><draw:page-thumbnail/><draw:frame presentation:class="notes"><draw:text-box>
    <text:p>Say hello.</text:p><text:p>Then go.</text:p></draw:text-box></draw:frame></presentation:notes>
</draw:page>
<draw:page draw:name="page2">
  <draw:frame presentation:class="page-number"><draw:text-box><text:p><text:page-number>&lt;number&gt;
    </text:page-number></text:p></draw:text-box></draw:frame>
  <draw:frame presentation:class="title"><draw:text-box><text:p>Numbers</text:p></draw:text-box></draw:frame>
  <draw:frame presentation:class="table"><table:table><table:table-row>
    <table:table-cell><text:p>h1</text:p></table:table-cell><table:table-cell><text:p>h2</text:p></table:table-cell>
    </table:table-row><table:table-row><table:table-cell><text:p>v1</text:p></table:table-cell><table:table-cell/>
    </table:table-row></table:table></draw:frame>
  <draw:frame><draw:text-box><text:list
    text:style-name="L2"><text:list-item><text:p>first</text:p></text:list-item>
    <text:list-item><text:p>second</text:p></text:list-item></text:list></draw:text-box></draw:frame>
</draw:page>
<draw:page draw:name="page3" draw:style-name="dp2">
  <draw:frame presentation:class="title"><draw:text-box><text:p>Hidden by style</text:p></draw:text-box>
  </draw:frame>
</draw:page>
<draw:page draw:name="page4"
  presentation:visibility="hidden"><draw:frame><draw:text-box><text:p>Hidden too</text:p>
  </draw:text-box></draw:frame></draw:page>
"""


def test_odp_slides_titles_lists_tables_pictures_and_notes(tmp_path: Path) -> None:
    picture = png_bytes()
    members = {"Pictures/p.png": picture}
    path = write_odf(
        tmp_path / "deck.odp", "presentation", SLIDES, automatic_styles=SLIDES_STYLES, members=members
    )
    document = read_odp(path, ReadOptions(), LIMITS)
    assert document.reader == "odp"
    pages = document.pages
    assert [(page.kind, page.title, page.hidden) for page in pages] == [
        ("slide", "Docling", False),
        ("slide", "Numbers", False),
        ("slide", "Hidden by style", True),
        ("slide", None, True),
    ]
    assert pages[0].blocks == [
        Heading(text="Docling", level=1),
        Paragraph(text="Image test"),
        ListItem(text="Point one", level=0),
        ListItem(text="Sub point", level=1),
        Image(ref="Pictures/p.png", alt="A red box", name="Picture 1"),
        Paragraph(text="Shape text"),
        Note(text="Say hello.\nThen go.", kind="speaker_notes"),
    ]
    assert document.image_bytes("Pictures/p.png") == picture
    assert page_markdown(pages[0]) == (
        "# Docling\n\nImage test\n\n- Point one\n    - Sub point\n\n<!-- image -->\n\nA red box\n\nShape text"
        "\n\n**Notes:**\n\nSay hello.\nThen go."
    )
    assert page_markdown(pages[1]) == "# Numbers\n\n| h1 | h2 |\n| - | - |\n| v1 |  |\n\n1. first\n2. second"
    without_notes = read_odp(path, ReadOptions(speaker_notes=False), LIMITS)
    assert not any(isinstance(block, Note) for block in without_notes.pages[0].blocks)


def test_odp_too_many_slides(tmp_path: Path) -> None:
    path = write_odf(tmp_path / "deck.odp", "presentation", "<draw:page/>" * 5)
    with pytest.raises(PagemillError) as exc:
        read_odp(path, ReadOptions(), LimitSettings(max_pages=3))
    assert _code(exc) == "TOO_MANY_PAGES"


# --- ODS ------------------------------------------------------------------------------------------

SHEET_STYLES = """<style:style style:name="ta2" style:family="table">
  <style:table-properties table:display="false"/></style:style>"""


def _cell(text: str, **attributes: str) -> str:
    attrs = "".join(
        f' {name.replace("_", ":", 1).replace("_", "-")}="{value}"' for name, value in attributes.items()
    )
    return f"<table:table-cell{attrs}><text:p>{text}</text:p></table:table-cell>"


WORKBOOK = f"""
<table:table table:name="Data">
  <table:table-column table:number-columns-repeated="1024"/>
  <table:table-row>{_cell("name")}{_cell("amount")}{_cell("flag")}
    <table:table-cell table:number-columns-repeated="1021"/></table:table-row>
  <table:table-row>{_cell("a")}{_cell("50%", office_value_type="percentage", office_value="0.5")}
    <table:table-cell office:value-type="boolean" office:boolean-value="true"/>
    <table:table-cell table:number-columns-repeated="1021"/></table:table-row>
  <table:table-row>{_cell("b")}{
    _cell("3.00", office_value_type="float", office_value="3", table_formula="of:=SUM([.B2];[$Other.A1:.A3])")
}
    <table:table-cell office:value-type="float" office:value="7"/></table:table-row>
  <table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="1024"/>
  </table:table-row>
  <table:table-row><table:table-cell table:number-columns-repeated="4"/>{_cell("far")}
    <table:table-cell table:number-columns-spanned="2"><text:p>merged</text:p></table:table-cell>
    <table:covered-table-cell/></table:table-row>
  <table:table-row><table:table-cell table:number-columns-repeated="4"/>
    <table:table-cell
      table:number-columns-repeated="3"><text:p>x</text:p></table:table-cell></table:table-row>
  <table:table-row table:number-rows-repeated="1048570"><table:table-cell
    table:number-columns-repeated="1024"/>
  </table:table-row>
</table:table>
<table:table table:name="Secret" table:style-name="ta2"><table:table-row>
  <table:table-cell office:value-type="date" office:date-value="2024-01-02"/></table:table-row></table:table>
<table:table table:name="Empty"><table:table-row table:number-rows-repeated="1048576">
  <table:table-cell table:number-columns-repeated="16384"/></table:table-row></table:table>
"""


def test_ods_sheets_values_as_displayed_split_at_empty_rows(tmp_path: Path) -> None:
    path = write_odf(tmp_path / "book.ods", "spreadsheet", WORKBOOK, automatic_styles=SHEET_STYLES)
    started = time.perf_counter()
    document = read_ods(path, ReadOptions(), LIMITS)
    assert time.perf_counter() - started < 2
    assert document.reader == "ods"
    assert [(page.kind, page.title, page.hidden) for page in document.pages] == [
        ("sheet", "Data", False),
        ("sheet", "Secret", True),
        ("sheet", "Empty", False),
    ]
    data = document.pages[0]
    assert data.blocks[0] == Heading(text="Data", level=2)
    assert page_markdown(data) == (
        "## Data\n\n"
        "| name | amount | flag |\n| - | - | - |\n| a | 50% | TRUE |\n| b | 3.00 | 7 |\n\n"
        "| far | merged | merged |\n| - | - | - |\n| x | x | x |"
    )
    first, second = data.blocks[1], data.blocks[2]
    assert isinstance(first, Table) and isinstance(second, Table)
    assert (first.n_rows, first.n_cols, second.n_rows, second.n_cols) == (3, 3, 2, 3)
    assert second.cells[1] == Cell(text="merged", row=0, col=1, col_span=2)
    assert page_markdown(document.pages[1]) == "## Secret\n\n| 2024-01-02 |\n| - |"
    assert document.pages[2].blocks == [Heading(text="Empty", level=2)]


def test_ods_formulas_when_asked(tmp_path: Path) -> None:
    path = write_odf(tmp_path / "book.ods", "spreadsheet", WORKBOOK, automatic_styles=SHEET_STYLES)
    page = read_ods(path, ReadOptions(formulas=True), LIMITS).pages[0]
    assert "| b | =SUM(B2;Other!A1:A3) | 7 |" in page_markdown(page)


def test_ods_pictures_and_header_rows(tmp_path: Path) -> None:
    body = f"""<table:table table:name="Pics"><table:shapes><draw:frame draw:name="Chart">
      <draw:image xlink:href="Pictures/c.png"/></draw:frame></table:shapes>
      <table:table-header-rows><table:table-row>{_cell("head")}</table:table-row></table:table-header-rows>
      <table:table-row>{_cell("body")}</table:table-row></table:table>"""
    path = write_odf(tmp_path / "pics.ods", "spreadsheet", body, members={"Pictures/c.png": png_bytes()})
    document = read_ods(path, ReadOptions(), LIMITS)
    page = document.pages[0]
    assert page.blocks == [
        Heading(text="Pics", level=2),
        Table(
            cells=[Cell(text="head", row=0, col=0, header=True), Cell(text="body", row=1, col=0)],
            n_rows=2,
            n_cols=1,
        ),
        Image(ref="Pictures/c.png", name="Chart"),
    ]
    assert document.image_bytes("Pictures/c.png") == png_bytes()


def test_ods_too_many_cells(tmp_path: Path) -> None:
    rows = "".join(f"<table:table-row>{_cell('v') * 10}</table:table-row>" for _ in range(20))
    path = write_odf(tmp_path / "big.ods", "spreadsheet", f'<table:table table:name="S">{rows}</table:table>')
    assert len(read_ods(path, ReadOptions(), LimitSettings(max_sheet_cells=200)).pages) == 1
    with pytest.raises(PagemillError) as exc:
        read_ods(path, ReadOptions(), LimitSettings(max_sheet_cells=199))
    assert _code(exc) == "TOO_MANY_CELLS"


def test_ods_repeated_content_is_counted_before_it_is_expanded(tmp_path: Path) -> None:
    body = """<table:table table:name="S"><table:table-row table:number-rows-repeated="1048576">
      <table:table-cell table:number-columns-repeated="16384"><text:p>x</text:p></table:table-cell>
      </table:table-row></table:table>"""
    path = write_odf(tmp_path / "bomb.ods", "spreadsheet", body)
    started = time.perf_counter()
    with pytest.raises(PagemillError) as exc:
        read_ods(path, ReadOptions(), LIMITS)
    assert _code(exc) == "TOO_MANY_CELLS"
    assert time.perf_counter() - started < 2


def test_ods_repeats_are_counted_across_the_workbook(tmp_path: Path) -> None:
    sheet = """<table:table table:name="S{n}"><table:table-row table:number-rows-repeated="10">
      <table:table-cell table:number-columns-repeated="10"><text:p>x</text:p></table:table-cell>
      </table:table-row></table:table>"""
    path = write_odf(tmp_path / "many.ods", "spreadsheet", "".join(sheet.format(n=n) for n in range(5)))
    # Each sheet has 100 cells, under the limit; the workbook repeats one cell 495 times.
    assert len(read_ods(path, ReadOptions(), LimitSettings(max_sheet_cells=495)).pages) == 5
    with pytest.raises(PagemillError) as exc:
        read_ods(path, ReadOptions(), LimitSettings(max_sheet_cells=494))
    assert _code(exc) == "TOO_MANY_CELLS"


def test_ods_sparse_cells_far_apart_make_small_tables(tmp_path: Path) -> None:
    body = f"""<table:table table:name="S"><table:table-row>{_cell("A1")}</table:table-row>
      <table:table-row table:number-rows-repeated="500000"><table:table-cell/></table:table-row>
      <table:table-row><table:table-cell
        table:number-columns-repeated="9000"/>{_cell("far")}</table:table-row>
      </table:table>"""
    path = write_odf(tmp_path / "sparse.ods", "spreadsheet", body)
    page = read_ods(path, ReadOptions(), LimitSettings(max_sheet_cells=10)).pages[0]
    assert page_markdown(page) == "## S\n\n| A1 |\n| - |\n\n| far |\n| - |"
