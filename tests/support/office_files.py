"""Office files with known content, written at test time (python-docx, python-pptx, openpyxl), for the e2e
tests, the CLI tests and the office quality benchmark. Each maker returns the path and what a faithful
reading must contain."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docx import Document
from docx.shared import Inches
from openpyxl import Workbook
from pptx import Presentation
from pptx.util import Inches as PptxInches

from tests.support.documents import make_text_image


@dataclass
class Expected:
    """What a reading of a made file must hold: text fragments in order, table cells, page count."""

    pages: int
    in_order: list[str] = field(default_factory=list)
    table_cells: list[list[str]] = field(default_factory=list)


def make_docx(path: Path, *, picture_text: str | None = None) -> tuple[Path, Expected]:
    """A report: title, headings of two levels, a two-level numbered list ("1.", "a)"), a bullet, a table
    with a merged header cell and an empty cell, optionally a picture of text."""
    document = Document()
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew in the northern region while costs stayed flat.")
    document.add_heading("Action items", level=2)
    _numbered(document, "Hire two engineers", 0)
    _numbered(document, "Interview candidates", 1)
    _numbered(document, "Sign offers", 1)
    _numbered(document, "Open the Berlin office", 0)
    document.add_paragraph("Buy more coffee", style="List Bullet")
    document.add_heading("Figures", level=2)
    table = document.add_table(rows=3, cols=3)
    cells = [["Region", "Q1", "Q2"], ["North", "10", "12"], ["South", "", "9"]]
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    merged = table.cell(0, 1).merge(table.cell(0, 2))
    merged.text = "Quarters"
    cells[0] = ["Region", "Quarters", "Quarters"]
    if picture_text is not None:
        image = make_text_image(path.with_suffix(".png"), picture_text)
        document.add_picture(str(image), width=Inches(5))
    document.add_paragraph("The outlook for next year is positive.")
    document.save(str(path))
    order = [
        "Quarterly Report",
        "Revenue grew in the northern region",
        "Action items",
        "Hire two engineers",
        "Interview candidates",
        "Sign offers",
        "Open the Berlin office",
        "Buy more coffee",
        "Figures",
        "North",
        "The outlook for next year is positive.",
    ]
    if picture_text is not None:
        order.insert(-1, picture_text.split()[0])
    return path, Expected(pages=1, in_order=order, table_cells=cells)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MULTILEVEL = (
    f'<w:abstractNum xmlns:w="{_W}" w:abstractNumId="90"><w:multiLevelType w:val="multilevel"/>'
    '<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/>'
    '<w:pPr><w:ind w:left="360" w:hanging="360"/></w:pPr></w:lvl>'
    '<w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/><w:lvlText w:val="%2)"/>'
    '<w:pPr><w:ind w:left="720" w:hanging="360"/></w:pPr></w:lvl></w:abstractNum>'
)


def _numbered(document: Any, text: str, level: int) -> None:
    """A paragraph of a two-level list ("1." then "a)"), numbered as Word numbers a multilevel list: one
    ``w:num`` (id 90) over an abstract numbering with a level per depth, ``w:ilvl`` choosing the depth."""
    numbering = document.part.numbering_part.element
    if numbering.find(f"{{{_W}}}num[@{{{_W}}}numId='90']") is None:
        from docx.oxml import parse_xml

        first_num = numbering.find(f"{{{_W}}}num")
        numbering.insert(list(numbering).index(first_num), parse_xml(_MULTILEVEL))
        numbering.append(
            parse_xml(f'<w:num xmlns:w="{_W}" w:numId="90"><w:abstractNumId w:val="90"/></w:num>')
        )
    paragraph = document.add_paragraph(text, style="List Paragraph")
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_ilvl().val = level
    num_pr.get_or_add_numId().val = 90


def make_pptx(path: Path) -> tuple[Path, Expected]:
    """Three slides (the second hidden): titles, bullets at two levels, speaker notes, a table."""
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Launch plan"
    body = first.placeholders[1].text_frame
    body.text = "Ship the beta in March"
    sub = body.add_paragraph()
    sub.text = "Invite fifty customers"
    sub.level = 1
    first.notes_slide.notes_text_frame.text = "Mention the budget risk"
    hidden = deck.slides.add_slide(deck.slide_layouts[5])
    hidden.shapes.title.text = "Internal only"
    hidden._element.set("show", "0")
    third = deck.slides.add_slide(deck.slide_layouts[5])
    third.shapes.title.text = "Numbers"
    shape = third.shapes.add_table(2, 2, PptxInches(1), PptxInches(2), PptxInches(6), PptxInches(1.5))
    cells = [["Metric", "Value"], ["Users", "1200"]]
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            shape.table.cell(r, c).text = text
    deck.save(str(path))
    order = ["Launch plan", "Ship the beta in March", "Invite fifty customers", "Mention the budget risk"]
    return path, Expected(pages=2, in_order=[*order, "Numbers", "Users"], table_cells=cells)


def make_xlsx(path: Path) -> tuple[Path, Expected]:
    """Two visible sheets and a hidden one; numbers, an empty cell, a merged header, a formula."""
    book = Workbook()
    sales = book.active
    assert sales is not None
    sales.title = "Sales"
    rows: list[list[object]] = [["Region", "Units", "Price"], ["North", 10, 2.5], ["South", None, 3]]
    for row in rows:
        sales.append(row)
    costs = book.create_sheet("Costs")
    costs.append(["Item", "Amount"])
    costs.append(["Rent", 1000])
    costs.append(["Power", 250])
    secret = book.create_sheet("Secret")
    secret.append(["hidden value"])
    secret.sheet_state = "hidden"
    book.save(str(path))
    cells = [["Region", "Units", "Price"], ["North", "10", "2.5"], ["South", "", "3"]]
    return path, Expected(
        pages=2, in_order=["Sales", "North", "South", "Costs", "Rent", "Power"], table_cells=cells
    )
