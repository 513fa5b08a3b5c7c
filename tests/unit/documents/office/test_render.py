"""Blocks to markdown, text and JSON: lists, merged cells, notes, pictures."""

from __future__ import annotations

from pagemill.documents.office.blocks import (
    Cell,
    Heading,
    Image,
    ListItem,
    Note,
    OfficePage,
    Paragraph,
    Table,
)
from pagemill.documents.office.render import page_blocks, page_markdown, page_text

MERGED = Table(
    cells=[
        Cell("Region", 0, 0, header=True),
        Cell("Quarters", 0, 1, col_span=2, header=True),
        Cell("North", 1, 0),
        Cell("1|0", 1, 1),
        Cell("", 1, 2),
    ],
    n_rows=2,
    n_cols=3,
)


def _page() -> OfficePage:
    return OfficePage(
        kind="document",
        blocks=[
            Heading("Report", 1),
            Paragraph("See the site.", md="See [the site](https://example.org)."),
            ListItem("First", 0, True, "1."),
            ListItem("Nested", 1, True, "a)"),
            ListItem("Second", 0, True, "2."),
            MERGED,
            Image(ref="word/media/image1.png", alt="Logo", text="ACME Corp"),
            Note("A footnote.", kind="footnote", label="1"),
        ],
    )


def test_markdown() -> None:
    assert page_markdown(_page()) == (
        "# Report\n\n"
        "See [the site](https://example.org).\n\n"
        "1. First\n    a) Nested\n2. Second\n\n"
        "| Region | Quarters | Quarters |\n| - | - | - |\n| North | 1\\|0 |  |\n\n"
        "<!-- image -->\n\nLogo\n\nACME Corp\n\n"
        "**Footnotes:**\n\n[^1]: A footnote."
    )


def test_html_tables_keep_spans() -> None:
    markdown = page_markdown(OfficePage(kind="sheet", blocks=[MERGED]), "html")
    assert '<th colspan="2">Quarters</th>' in markdown and "<td>1|0</td><td></td>" in markdown
    # auto: HTML only where markdown cannot hold the table.
    plain = Table(cells=[Cell("a", 0, 0), Cell("b", 0, 1)], n_rows=1, n_cols=2)
    assert page_markdown(OfficePage(kind="sheet", blocks=[plain]), "auto").startswith("| a | b |")
    assert page_markdown(OfficePage(kind="sheet", blocks=[MERGED]), "auto").startswith("<table>")


def test_text_and_blocks() -> None:
    text = page_text(_page())
    assert "Region\tQuarters\tQuarters" in text and "  a) Nested" in text and "ACME Corp" in text
    blocks = page_blocks(_page())
    assert [b["type"] for b in blocks] == [
        "heading",
        "paragraph",
        "list_item",
        "list_item",
        "list_item",
        "table",
        "image",
        "note",
    ]
    assert blocks[3] == {"type": "list_item", "text": "Nested", "level": 1, "ordered": True, "marker": "a)"}
    assert blocks[5]["cells"][1] == {
        "row": 0,
        "col": 1,
        "row_span": 1,
        "col_span": 2,
        "text": "Quarters",
        "header": True,
    }
