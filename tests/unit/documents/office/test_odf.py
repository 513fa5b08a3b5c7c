"""The OpenDocument readers (ODT, ODP, ODS) on packages built at test time with known text."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.blocks import Block, Cell, Heading, Image, ListItem, Note, Paragraph, Table
from pagemill.documents.office.document import Reader, ReadOptions
from pagemill.documents.office.odf import read_odp, read_ods, read_odt
from pagemill.documents.office.readers import read_office
from pagemill.documents.office.render import page_markdown, page_text
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings
from tests.support.odf_files import BodyKind, content_xml, png_bytes, write_odf

LIMITS = LimitSettings()
BOLD_ITALIC = """
<style:style style:name="T1" style:family="text"><style:text-properties fo:font-weight="bold"/></style:style>
<style:style style:name="T2" style:family="text"><style:text-properties fo:font-style="italic"/></style:style>
"""


def _odt(tmp_path: Path, body: str, **kwargs: Any) -> list[Block]:
    path = write_odf(tmp_path / "doc.odt", "text", body, **kwargs)
    document = read_odt(path, ReadOptions(), LIMITS)
    assert document.reader == "odt"
    assert [page.kind for page in document.pages] == ["document"]
    return list(document.pages[0].blocks)


def _odt_markdown(tmp_path: Path, body: str, **kwargs: Any) -> str:
    path = write_odf(tmp_path / "doc.odt", "text", body, **kwargs)
    return page_markdown(read_odt(path, ReadOptions(), LIMITS).pages[0])


def _code(exc: pytest.ExceptionInfo[PagemillError]) -> str:
    return exc.value.code


# --- ODT: text -----------------------------------------------------------------------------------


def test_odt_headings_paragraphs_and_inline_markup(tmp_path: Path) -> None:
    styles = """
    <style:style style:name="Heading_20_3" style:family="paragraph" style:default-outline-level="3"/>
    <style:style style:name="Mine" style:family="paragraph" style:parent-style-name="Heading_20_3"/>
    """
    body = """
    <text:sequence-decls><text:sequence-decl text:name="Figure"/></text:sequence-decls>
    <text:tracked-changes><text:changed-region><text:deletion><text:p>deleted words</text:p></text:deletion>
    </text:changed-region></text:tracked-changes>
    <text:h text:outline-level="1">Swimming <text:soft-page-break/>in the lake</text:h>
    <text:p>Hello   <text:span text:style-name="T1">bold</text:span> and
      <text:span text:style-name="T2">italic </text:span>x<text:s
        text:c="3"/>y<text:tab/>z<text:line-break/>next
      <text:a xlink:href="https://example.com/a b">a link</text:a>, <text:a
        xlink:href="#Intro">inside</text:a>.
      <office:annotation><text:p>a comment</text:p></office:annotation></text:p>
    <text:p/>
    <text:h text:outline-level="2">Let's swim</text:h>
    <text:h text:style-name="Mine">From the style</text:h>
    <text:h>No level</text:h>
    """
    blocks = _odt(tmp_path, body, automatic_styles=BOLD_ITALIC, styles=styles)
    assert blocks == [
        Heading(text="Swimming in the lake", level=1),
        Paragraph(
            text="Hello bold and italic x   y\tz\nnext a link, inside.",
            md="Hello **bold** and *italic* x   y\tz\nnext [a link](https://example.com/a%20b), inside.",
        ),
        Heading(text="Let's swim", level=2),
        Heading(text="From the style", level=3),
        Heading(text="No level", level=1),
    ]


def test_odt_nested_numbered_lists_keep_the_documents_numbers(tmp_path: Path) -> None:
    automatic = """
    <text:list-style style:name="L1">
      <text:list-level-style-number text:level="1" style:num-suffix="." style:num-format="1"
        text:start-value="3"/>
      <text:list-level-style-number text:level="2" style:num-suffix=")" style:num-format="a"/>
      <text:list-level-style-number text:level="3" style:num-suffix="." style:num-format="1"
        text:display-levels="3"/>
    </text:list-style>
    <text:list-style style:name="L2">
      <text:list-level-style-number text:level="1" style:num-prefix="(" style:num-suffix=")"
        style:num-format="I"/>
      <text:list-level-style-bullet text:level="2" text:bullet-char="•"/>
    </text:list-style>
    <text:list-style style:name="L3"><text:list-level-style-bullet text:level="1" text:bullet-char="•"/>
    </text:list-style>
    """
    body = """
    <text:list xml:id="list1" text:style-name="L1">
      <text:list-item><text:p>Three</text:p>
        <text:list>
          <text:list-item><text:p>sub a</text:p>
            <text:list><text:list-item><text:p>deep</text:p></text:list-item></text:list>
          </text:list-item>
          <text:list-item><text:p>sub b</text:p><text:p>more of sub b</text:p></text:list-item>
        </text:list>
      </text:list-item>
      <text:list-item><text:p>Four</text:p>
        <text:list><text:list-item><text:p>sub a again</text:p></text:list-item></text:list>
      </text:list-item>
    </text:list>
    <text:p>Between</text:p>
    <text:list text:continue-numbering="true" text:style-name="L1">
      <text:list-item><text:p>Five</text:p></text:list-item>
    </text:list>
    <text:list xml:id="list2" text:style-name="L2">
      <text:list-item><text:p>Roman one</text:p>
        <text:list><text:list-item><text:p>a bullet</text:p></text:list-item></text:list></text:list-item>
    </text:list>
    <text:list text:style-name="L1"><text:list-item><text:p>Restarted</text:p></text:list-item></text:list>
    <text:list text:continue-list="list2" text:style-name="L2">
      <text:list-item><text:p>Roman two</text:p></text:list-item>
      <text:list-item text:start-value="9"><text:p>Roman nine</text:p></text:list-item>
      <text:list-header><text:p>Unnumbered</text:p></text:list-header>
    </text:list>
    <text:list text:style-name="L3"><text:list-item><text:p>plain bullet</text:p></text:list-item></text:list>
    """
    markdown = _odt_markdown(tmp_path, body, automatic_styles=automatic)
    assert markdown == (
        "3. Three\n"
        "    a) sub a\n"
        "        3.a.1. deep\n"
        "    b) sub b more of sub b\n"
        "4. Four\n"
        "    a) sub a again\n\n"
        "Between\n\n"
        "5. Five\n"
        "(I) Roman one\n"
        "    - a bullet\n"
        "3. Restarted\n"
        "(II) Roman two\n"
        "(IX) Roman nine\n\n"
        "Unnumbered\n\n"
        "- plain bullet"
    )
    blocks = _odt(tmp_path, body, automatic_styles=automatic)
    assert blocks[0] == ListItem(text="Three", level=0, ordered=True, marker="3.")
    assert blocks[2] == ListItem(text="deep", level=2, ordered=True, marker="3.a.1.")
    assert blocks[-1] == ListItem(text="plain bullet", level=0, ordered=False, marker="-")


def test_odt_sub_list_in_an_item_without_a_paragraph_does_not_count(tmp_path: Path) -> None:
    # LibreOffice writes an item that starts at a deeper level as an item holding only the deeper list.
    automatic = """<text:list-style style:name="L1">
      <text:list-level-style-number text:level="1" style:num-suffix="." style:num-format="1"/>
      <text:list-level-style-number text:level="2" style:num-suffix="." style:num-format="i"/>
    </text:list-style>"""
    body = """<text:list text:style-name="L1">
      <text:list-item><text:p>One</text:p></text:list-item>
      <text:list-item><text:list><text:list-item><text:p>sub</text:p></text:list-item>
        <text:list-item><text:p>sub two</text:p></text:list-item></text:list></text:list-item>
      <text:list-item><text:p>Two</text:p></text:list-item>
    </text:list>"""
    markdown = _odt_markdown(tmp_path, body, automatic_styles=automatic)
    assert markdown == "1. One\n    i. sub\n    ii. sub two\n2. Two"


def test_odt_list_style_from_the_paragraph_style_in_styles_xml(tmp_path: Path) -> None:
    styles = """
    <text:list-style style:name="Numbering_20_abc">
      <text:list-level-style-number text:level="1" style:num-suffix="." style:num-format="A"
        style:num-letter-sync="true"/>
    </text:list-style>
    <style:style style:name="Numbered" style:family="paragraph" style:list-style-name="Numbering_20_abc"/>
    """
    items = "".join(
        f'<text:list-item><text:p text:style-name="Numbered">i{n}</text:p></text:list-item>'
        for n in range(28)
    )
    blocks = _odt(tmp_path, f"<text:list>{items}</text:list>", styles=styles)
    markers = [block.marker for block in blocks if isinstance(block, ListItem)]
    assert markers[:3] == ["A.", "B.", "C."]
    assert markers[25:] == ["Z.", "AA.", "BB."]


def test_odt_footnotes_and_endnotes(tmp_path: Path) -> None:
    body = """
    <text:p>Fact<text:note text:id="ftn1"
      text:note-class="footnote"><text:note-citation>1</text:note-citation>
      <text:note-body><text:p>A <text:span text:style-name="T1">bold</text:span> footnote.</text:p>
      <text:p>Second line.</text:p></text:note-body></text:note> here.</text:p>
    <text:p>End<text:note text:id="edn1" text:note-class="endnote"><text:note-citation
      text:label="*">i</text:note-citation>
      <text:note-body><text:p>An endnote.</text:p></text:note-body></text:note>.</text:p>
    """
    blocks = _odt(tmp_path, body, automatic_styles=BOLD_ITALIC)
    assert blocks == [
        Paragraph(text="Fact here.", md="Fact[^1] here."),
        Note(
            text="A bold footnote. Second line.",
            kind="footnote",
            label="1",
            md="A **bold** footnote. Second line.",
        ),
        Paragraph(text="End.", md="End[^*]."),
        Note(text="An endnote.", kind="endnote", label="*"),
    ]
    markdown = _odt_markdown(tmp_path, body, automatic_styles=BOLD_ITALIC)
    assert markdown == (
        "Fact[^1] here.\n\nEnd[^*].\n\n**Footnotes:**\n\n[^1]: A **bold** footnote. Second line."
        "\n\n**Endnotes:**\n\n[^*]: An endnote."
    )


# --- ODT: tables ----------------------------------------------------------------------------------


def test_odt_table_with_header_rows_and_merged_cells(tmp_path: Path) -> None:
    body = """
    <table:table table:name="Food">
      <table:table-column table:number-columns-repeated="3"/>
      <table:table-header-rows><table:table-row>
        <table:table-cell/><table:table-cell><text:p>Food</text:p></table:table-cell>
        <table:table-cell><text:p>Calories per portion</text:p></table:table-cell>
      </table:table-row></table:table-header-rows>
      <table:table-row>
        <table:table-cell table:number-rows-spanned="2"><text:p>Leaves</text:p></table:table-cell>
        <table:table-cell table:number-columns-spanned="2"><text:p>Ash, Elm</text:p></table:table-cell>
        <table:covered-table-cell/>
      </table:table-row>
      <table:table-row>
        <table:covered-table-cell/>
        <table:table-cell><text:p>Maple</text:p><text:p>and oak</text:p></table:table-cell>
        <table:table-cell><text:p>50</text:p></table:table-cell>
      </table:table-row>
      <table:table-row table:number-rows-repeated="2">
        <table:table-cell table:number-columns-repeated="2"><text:p>same</text:p></table:table-cell>
        <table:table-cell/>
      </table:table-row>
    </table:table>
    """
    blocks = _odt(tmp_path, body)
    assert len(blocks) == 1 and isinstance(blocks[0], Table)
    table = blocks[0]
    assert (table.n_rows, table.n_cols, table.header_rows) == (5, 3, 1)
    assert table.cells[:5] == [
        Cell(text="Food", row=0, col=1, header=True),
        Cell(text="Calories per portion", row=0, col=2, header=True),
        Cell(text="Leaves", row=1, col=0, row_span=2),
        Cell(text="Ash, Elm", row=1, col=1, col_span=2),
        Cell(text="Maple\nand oak", row=2, col=1),
    ]
    assert _odt_markdown(tmp_path, body) == (
        "|  | Food | Calories per portion |\n"
        "| - | - | - |\n"
        "| Leaves | Ash, Elm | Ash, Elm |\n"
        "| Leaves | Maple and oak | 50 |\n"
        "| same | same |  |\n"
        "| same | same |  |"
    )


def test_odt_table_trailing_repeats_are_not_expanded(tmp_path: Path) -> None:
    body = """
    <table:table><table:table-row><table:table-cell><text:p>only</text:p></table:table-cell>
      <table:table-cell table:number-columns-repeated="16000"/></table:table-row>
      <table:table-row table:number-rows-repeated="1000000"><table:table-cell
        table:number-columns-repeated="16001"/>
      </table:table-row></table:table>
    """
    started = time.perf_counter()
    (table,) = _odt(tmp_path, body)
    assert time.perf_counter() - started < 2
    assert isinstance(table, Table)
    assert (table.n_rows, table.n_cols, table.cells) == (1, 1, [Cell(text="only", row=0, col=0)])


# --- ODT: pictures and hidden content -------------------------------------------------------------


def test_odt_pictures_have_refs_whose_bytes_load(tmp_path: Path) -> None:
    picture = png_bytes()
    body = """
    <text:p><draw:frame draw:name="Duck"><draw:image xlink:href="Pictures/duck.png"/>
      <svg:title>Duck</svg:title><svg:desc>A cute duckling</svg:desc></draw:frame>Figure 1: a duck</text:p>
    <text:p><draw:frame draw:name="Vector"><draw:image xlink:href="./Pictures/v.svg"/>
      <draw:image xlink:href="./Pictures/v%20fallback.png"/></draw:frame></text:p>
    <text:p><draw:frame draw:name="Linked"><draw:image
      xlink:href="https://example.com/x.png"/></draw:frame></text:p>
    <draw:frame draw:name="Box"><draw:text-box><text:p>Text in a box</text:p></draw:text-box></draw:frame>
    """
    members = {"Pictures/duck.png": picture, "Pictures/v.svg": b"<svg/>", "Pictures/v fallback.png": picture}
    path = write_odf(tmp_path / "pictures.odt", "text", body, members=members)
    document = read_odt(path, ReadOptions(), LIMITS)
    page = document.pages[0]
    assert page.blocks == [
        Image(ref="Pictures/duck.png", alt="Duck: A cute duckling", name="Duck"),
        Paragraph(text="Figure 1: a duck"),
        Image(ref="Pictures/v fallback.png", name="Vector"),
        Image(ref=None, name="Linked"),
        Paragraph(text="Text in a box"),
    ]
    assert [image.ref for image in page.images()] == ["Pictures/duck.png", "Pictures/v fallback.png"]
    assert document.image_bytes("Pictures/duck.png") == picture
    assert page_markdown(page).startswith("<!-- image -->\n\nDuck: A cute duckling\n\nFigure 1: a duck")


def test_odt_hidden_section_is_read_only_when_asked(tmp_path: Path) -> None:
    body = """<text:section text:name="S1"><text:p>Shown</text:p></text:section>
    <text:section text:name="S2" text:display="none"><text:p>Secret</text:p></text:section>"""
    path = write_odf(tmp_path / "hidden.odt", "text", body)
    assert page_text(read_odt(path, ReadOptions(), LIMITS).pages[0]) == "Shown"
    assert page_text(read_odt(path, ReadOptions(hidden=True), LIMITS).pages[0]) == "Shown\n\nSecret"


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
