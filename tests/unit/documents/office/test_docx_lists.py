"""The DOCX reader's lists and numbering: the document's own numbers, nesting by ilvl, list styles and
indents, and numbered headings."""

from __future__ import annotations

from pathlib import Path

import docx

from pagemill.documents.office.blocks import Heading, ListItem, Paragraph
from pagemill.documents.office.render import page_markdown
from tests.unit.documents.office.docx_helpers import W, make_docx, p, read, rel


def li(text: str, num_id: int, ilvl: int = 0) -> str:
    return p(text, f'<w:numPr><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr>')


# -- lists -----------------------------------------------------------------------------------------------

NUMBERING = f"""<w:numbering xmlns:w="{W}">
<w:abstractNum w:abstractNumId="1">
  <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>
  <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/><w:lvlText w:val="%2)"/></w:lvl>
  <w:lvl w:ilvl="2"><w:start w:val="1"/><w:numFmt w:val="lowerRoman"/><w:lvlText w:val="%3."/></w:lvl>
</w:abstractNum>
<w:abstractNum w:abstractNumId="2">
  <w:lvl w:ilvl="0"><w:start w:val="3"/><w:numFmt w:val="upperRoman"/><w:lvlText w:val="%1."/></w:lvl>
</w:abstractNum>
<w:abstractNum w:abstractNumId="3">
  <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="upperLetter"/><w:lvlText w:val="%1."/></w:lvl>
  <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2."/>
    <w:isLgl/></w:lvl>
</w:abstractNum>
<w:abstractNum w:abstractNumId="4">
  <w:lvl w:ilvl="0"><w:numFmt w:val="bullet"/><w:lvlText w:val="\uf0b7"/></w:lvl>
</w:abstractNum>
<w:num w:numId="1"><w:abstractNumId w:val="1"/></w:num>
<w:num w:numId="2"><w:abstractNumId w:val="1"/>
  <w:lvlOverride w:ilvl="0"><w:startOverride w:val="5"/></w:lvlOverride></w:num>
<w:num w:numId="3"><w:abstractNumId w:val="2"/></w:num>
<w:num w:numId="4"><w:abstractNumId w:val="3"/></w:num>
<w:num w:numId="5"><w:abstractNumId w:val="4"/></w:num>
</w:numbering>"""


def test_nested_numbered_lists_use_the_documents_own_numbers(tmp_path: Path) -> None:
    body = "".join(
        [
            li("A", 1),
            li("A1", 1, 1),
            li("A2", 1, 1),
            li("A2x", 1, 2),
            p("Between the items"),
            li("B", 1),
            li("B1", 1, 1),
            li("C", 2),
            li("D", 1),
            li("Three", 3),
            li("Four", 3),
            li("Alpha", 4),
            li("Alpha one", 4, 1),
            li("Dot", 5),
            li("Undefined level", 5, 4),
            li("No longer a list", 0),
            li("Unknown list", 99),
        ]
    )
    path = make_docx(
        tmp_path,
        body,
        parts={"word/numbering.xml": NUMBERING},
        rels=rel("rIdN", "numbering", "numbering.xml"),
    )
    blocks = read(path).pages[0].blocks
    assert blocks == [
        ListItem("A", 0, True, "1."),
        ListItem("A1", 1, True, "a)"),
        ListItem("A2", 1, True, "b)"),
        ListItem("A2x", 2, True, "i."),
        Paragraph("Between the items"),
        ListItem("B", 0, True, "2."),
        ListItem("B1", 1, True, "a)"),
        ListItem("C", 0, True, "5."),
        ListItem("D", 0, True, "6."),
        ListItem("Three", 0, True, "III."),
        ListItem("Four", 0, True, "IV."),
        ListItem("Alpha", 0, True, "A."),
        ListItem("Alpha one", 1, True, "1.1."),
        ListItem("Dot", 0, False, "-"),
        Paragraph("Undefined level"),
        Paragraph("No longer a list"),
        Paragraph("Unknown list"),
    ]
    markdown = page_markdown(read(path).pages[0])
    assert (
        "1. A\n    a) A1\n    b) A2\n        i. A2x\n\nBetween the items\n\n2. B\n    a) B1\n5. C" in markdown
    )


def test_list_styles_indented_further_nest_under_the_list_before(tmp_path: Path) -> None:
    # "List Bullet 2" and "List Number 2" are one-level lists of their own, only indented further (720
    # twips against 360): they nest under the item before them, and a paragraph or a table ends the run.
    document = docx.Document()
    for text, style in [
        ("Late deliveries", "List Bullet"),
        ("Broken equipment", "List Bullet"),
        ("Vehicles", "List Bullet 2"),
        ("Vans", "List Bullet 3"),
        ("Step one", "List Number 2"),
        ("Step two", "List Number 2"),
        ("Staff", "List Bullet"),
        ("Overtime", "List Number 2"),
        ("After the list", None),
        ("Alone", "List Bullet 2"),
    ]:
        document.add_paragraph(text, style=style)
    document.add_table(rows=1, cols=1).cell(0, 0).text = "cell"
    document.add_paragraph("After the table", style="List Bullet 2")
    path = tmp_path / "styles.docx"
    document.save(str(path))

    page = read(path).pages[0]
    assert [(b.text, b.level, b.marker) for b in page.blocks if isinstance(b, ListItem)] == [
        ("Late deliveries", 0, "-"),
        ("Broken equipment", 0, "-"),
        ("Vehicles", 1, "-"),
        ("Vans", 2, "-"),
        ("Step one", 1, "1."),
        ("Step two", 1, "2."),
        ("Staff", 0, "-"),
        ("Overtime", 1, "3."),
        ("Alone", 0, "-"),
        ("After the table", 0, "-"),
    ]
    assert page_markdown(page).startswith(
        "- Late deliveries\n- Broken equipment\n    - Vehicles\n        - Vans\n    1. Step one\n"
        "    2. Step two\n- Staff\n    3. Overtime\n\nAfter the list\n\n- Alone\n\n"
    )


def _level(ilvl: int, fmt: str, text: str, left: int) -> str:
    return (
        f'<w:lvl w:ilvl="{ilvl}"><w:start w:val="1"/><w:numFmt w:val="{fmt}"/><w:lvlText w:val="{text}"/>'
        f'<w:pPr><w:ind w:left="{left}" w:hanging="360"/></w:pPr></w:lvl>'
    )


# Every level of every list at 360 twips, so only ilvl, direct indents and styles make a difference.
INDENTED_NUMBERING = (
    f'<w:numbering xmlns:w="{W}">'
    f'<w:abstractNum w:abstractNumId="10">{_level(0, "decimal", "%1.", 360)}'
    f"{_level(1, 'lowerLetter', '%2)', 360)}</w:abstractNum>"
    f'<w:abstractNum w:abstractNumId="12">{_level(0, "decimal", "%1.", 360)}</w:abstractNum>'
    + "".join(
        f'<w:abstractNum w:abstractNumId="{i}">{_level(0, "bullet", "o", 360)}</w:abstractNum>'
        for i in (11, 13, 14)
    )
    + "".join(f'<w:num w:numId="{i}"><w:abstractNumId w:val="{i}"/></w:num>' for i in range(10, 15))
    + "</w:numbering>"
)
INDENT_STYLES = (
    f'<w:styles xmlns:w="{W}">'
    '<w:style w:type="paragraph" w:styleId="ListPara"><w:name w:val="List Paragraph"/>'
    '<w:pPr><w:ind w:left="720"/></w:pPr></w:style>'
    '<w:style w:type="paragraph" w:styleId="Wide"><w:name w:val="Wide"/>'
    '<w:pPr><w:ind w:left="1440"/></w:pPr></w:style>'
    '<w:style w:type="paragraph" w:styleId="Sub"><w:name w:val="Sub"/><w:basedOn w:val="ListPara"/>'
    '<w:pPr><w:numPr><w:numId w:val="12"/></w:numPr><w:ind w:left="1440"/></w:pPr></w:style>'
    '<w:style w:type="paragraph" w:styleId="SubInherited"><w:name w:val="Sub inherited"/>'
    '<w:basedOn w:val="Wide"/><w:pPr><w:numPr><w:numId w:val="14"/></w:numPr></w:pPr></w:style>'
    "</w:styles>"
)


def test_list_nesting_follows_ilvl_and_the_effective_indent(tmp_path: Path) -> None:
    def item(text: str, num_id: int, ilvl: int = 0, extra: str = "") -> str:
        numpr = f'<w:numPr><w:ilvl w:val="{ilvl}"/><w:numId w:val="{num_id}"/></w:numPr>'
        return p(text, f'<w:pStyle w:val="ListPara"/>{numpr}{extra}')

    body = "".join(
        [
            item("Top", 10),
            item("Child at the same indent", 10, 1),  # a multilevel list nests by ilvl alone
            item("Indented by hand", 11, extra='<w:ind w:left="1440"/>'),  # the paragraph's own indent
            item("Back", 10),
            # The list level's 360 overrides the List Paragraph style's 720: not under "Back".
            item("Level indent wins over the style", 13),
            p("Between"),
            item("Plain", 10),
            # Numbering from a style: that style's own indent (1440) overrides the list level's (360) ...
            p("Style indent wins", '<w:pStyle w:val="Sub"/>'),
            # ... but one it only inherits does not.
            p("Inherited indent does not", '<w:pStyle w:val="SubInherited"/>'),
            item("Broken indent", 10, extra='<w:ind w:left="inf"/>'),  # ignored, not an error
        ]
    )
    path = make_docx(
        tmp_path,
        body,
        parts={"word/numbering.xml": INDENTED_NUMBERING, "word/styles.xml": INDENT_STYLES},
        rels=rel("rIdN", "numbering", "numbering.xml") + rel("rIdS", "styles", "styles.xml"),
    )
    assert read(path).pages[0].blocks == [
        ListItem("Top", 0, True, "1."),
        ListItem("Child at the same indent", 1, True, "a)"),
        ListItem("Indented by hand", 2, False, "-"),
        ListItem("Back", 0, True, "2."),
        ListItem("Level indent wins over the style", 0, False, "-"),
        Paragraph("Between"),
        ListItem("Plain", 0, True, "3."),
        ListItem("Style indent wins", 1, True, "1."),
        ListItem("Inherited indent does not", 0, False, "-"),
        ListItem("Broken indent", 0, True, "4."),
    ]


def test_heading_levels_without_a_title_start_at_one_and_numbered_headings(tmp_path: Path) -> None:
    styles = (
        f'<w:styles xmlns:w="{W}">'
        '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/>'
        '<w:pPr><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>'
        '<w:style w:type="paragraph" w:styleId="Mine"><w:name w:val="Mine"/><w:basedOn w:val="Normal"/>'
        '<w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style></w:styles>'
    )
    body = (
        p("Top", '<w:pStyle w:val="Heading1"/>')
        + p("Third", '<w:pStyle w:val="Mine"/>')
        + p("")
        + p("Next", '<w:pStyle w:val="Heading1"/>')
    )
    path = make_docx(
        tmp_path,
        body,
        parts={"word/styles.xml": styles, "word/numbering.xml": NUMBERING},
        rels=rel("rIdS", "styles", "styles.xml") + rel("rIdN", "numbering", "numbering.xml"),
    )
    assert read(path).pages[0].blocks == [Heading("1. Top", 1), Heading("Third", 3), Heading("2. Next", 1)]
