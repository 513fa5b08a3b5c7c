"""The OpenDocument text reader (ODT) on packages built at test time with known text: headings, inline
markup, lists, notes, tables, pictures and hidden sections."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pagemill.documents.office.blocks import Block, Cell, Heading, Image, ListItem, Note, Paragraph, Table
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.odf import read_odt
from pagemill.documents.office.render import page_markdown, page_text
from tests.support.odf_files import png_bytes, write_odf
from tests.unit.documents.office.odf_helpers import LIMITS

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
