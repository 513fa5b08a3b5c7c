"""Richer office files with known content for ``bench.office_quality``, written at run time, each with a
reference markdown written from that content (not by any converter), its tables and its numbered items.

Beside the makers of ``tests/support/office_files.py`` (``bench.office_known``): heading levels 1-4, nested
numbered lists with a continuation after a paragraph and a restart, tables merged across rows and columns,
empty cells, speaker notes, a hidden slide, numbered text-box paragraphs, a group shape, several sheets (a
merged title, an offset table, two tables on one sheet, an empty sheet, a hidden one) and dates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from docx import Document
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from openpyxl import Workbook
from pptx import Presentation
from pptx.oxml.ns import nsdecls as pptx_nsdecls
from pptx.util import Inches

from bench.office_known import (
    Generated,
    KnownTable,
    inventory_rows,
    pipe,
    put_rows,
    support_docx,
    support_pptx,
    support_xlsx,
)

_ABSTRACT_ID = 90
_CONTINUED, _RESTARTED = 90, 91


def _add_numbering(document: object) -> None:
    """A decimal list definition (``1.`` at every level) and two lists of it: 90, and 91 restarting at 1."""
    numbering = document.part.numbering_part.element  # type: ignore[attr-defined]
    levels = "".join(
        f'<w:lvl w:ilvl="{i}"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%{i + 1}."/>'
        f'<w:lvlJc w:val="left"/><w:pPr><w:ind w:left="{720 * (i + 1)}" w:hanging="360"/></w:pPr></w:lvl>'
        for i in range(3)
    )
    abstract = parse_xml(
        f'<w:abstractNum {nsdecls("w")} w:abstractNumId="{_ABSTRACT_ID}">'
        f'<w:multiLevelType w:val="hybridMultilevel"/>{levels}</w:abstractNum>'
    )
    numbering.find(qn("w:num")).addprevious(abstract)  # abstractNum elements come before num elements
    for num_id, restart in ((_CONTINUED, False), (_RESTARTED, True)):
        override = '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride>' if restart else ""
        numbering.append(
            parse_xml(
                f'<w:num {nsdecls("w")} w:numId="{num_id}"><w:abstractNumId w:val="{_ABSTRACT_ID}"/>'
                f"{override}</w:num>"
            )
        )


def _numbered(document: object, text: str, num_id: int, level: int) -> None:
    paragraph = document.add_paragraph(text, style="List Paragraph")  # type: ignore[attr-defined]
    paragraph._p.get_or_add_pPr().append(
        parse_xml(f'<w:numPr {nsdecls("w")}><w:ilvl w:val="{level}"/><w:numId w:val="{num_id}"/></w:numPr>')
    )


HANDBOOK_CREWS = KnownTable(
    [
        ["Region", "Crews", "Crews", "Budget"],
        ["Region", "Spring", "Autumn", "Budget"],
        ["North", "4", "5", "12000"],
        ["South", "3", "", "9500"],
        ["West", "", "2", "7000"],
    ],
    covered={(0, 2), (1, 0), (1, 3)},
)
HANDBOOK_VEHICLES = KnownTable([["Vehicle", "Seats", "Depot"], ["Van", "3", "Leeds"], ["Truck", "2", "York"]])
# (number shown, text, list, level), in document order; None marks the paragraph between list items.
HANDBOOK_STEPS: list[tuple[str, str, int, int] | None] = [
    ("1.", "Collect the survey requests", _CONTINUED, 0),
    ("1.", "Check the request forms", _CONTINUED, 1),
    ("2.", "Reject duplicate requests", _CONTINUED, 1),
    ("2.", "Assign the survey crews", _CONTINUED, 0),
    None,
    ("3.", "Book the vehicles", _CONTINUED, 0),
    ("1.", "Reserve the trucks", _CONTINUED, 1),
    ("4.", "Publish the schedule", _CONTINUED, 0),
]
HANDBOOK_REVIEW = [("1.", "Compare the results with the plan"), ("2.", "Record the deviations")]


PORTAL = "https://example.org/operations"


def _link_paragraph(document: object) -> None:
    """A paragraph with a hyperlink and a line break."""
    paragraph = document.add_paragraph("Plans are filed on the ")  # type: ignore[attr-defined]
    r_id = document.part.relate_to(PORTAL, RT.HYPERLINK, is_external=True)  # type: ignore[attr-defined]
    paragraph._p.append(
        parse_xml(
            f'<w:hyperlink {nsdecls("w", "r")} r:id="{r_id}"><w:r><w:t>operations portal</w:t></w:r>'
            "</w:hyperlink>"
        )
    )
    run = paragraph.add_run(".")
    run.add_break()
    paragraph.add_run("Late plans are not accepted.")


def _tracked_change(document: object) -> None:
    """ "The next review is on Friday." with "Monday" deleted and "Friday" inserted as tracked changes."""
    paragraph = document.add_paragraph("The next review is on ")  # type: ignore[attr-defined]
    stamp = 'w:author="bench" w:date="2024-01-01T00:00:00Z"'
    paragraph._p.append(
        parse_xml(
            f'<w:del {nsdecls("w")} w:id="901" {stamp}><w:r><w:delText>Monday</w:delText></w:r></w:del>'
        )
    )
    paragraph._p.append(
        parse_xml(f'<w:ins {nsdecls("w")} w:id="902" {stamp}><w:r><w:t>Friday</w:t></w:r></w:ins>')
    )
    paragraph.add_run(".")


def _content_control(document: object, text: str) -> None:
    """A paragraph inside a block-level content control (w:sdt)."""
    body = document.element.body  # type: ignore[attr-defined]
    sdt = parse_xml(
        f'<w:sdt {nsdecls("w")}><w:sdtPr><w:alias w:val="Owner"/></w:sdtPr><w:sdtContent><w:p><w:r>'
        f"<w:t>{text}</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    )
    body.insert(len(body) - 1, sdt)  # before the section properties, the body's last child


def handbook_docx(folder: Path) -> Generated:
    """Headings 1-4, a numbered list continued after a paragraph, a restarted one, bullets at two levels,
    a table merged across rows and columns with empty cells, a second table, bold and italic runs, a
    hyperlink and a line break, a tracked deletion and insertion (the deleted word must not show), a
    block content control."""
    document = Document()
    _add_numbering(document)
    document.add_heading("Field Operations Handbook", level=1)
    intro = document.add_paragraph("This handbook describes how the ")
    intro.add_run("field teams").bold = True
    intro.add_run(" plan, run and report their ")
    intro.add_run("surveys").italic = True
    intro.add_run(".")
    document.add_heading("Planning", level=2)
    document.add_paragraph("Every season starts with a plan agreed by the regional leads.")
    _link_paragraph(document)
    document.add_heading("Preparation steps", level=3)
    lines = [
        "# Field Operations Handbook",
        "This handbook describes how the **field teams** plan, run and report their *surveys*.",
        "## Planning",
        "Every season starts with a plan agreed by the regional leads.",
        f"Plans are filed on the [operations portal]({PORTAL}).  \nLate plans are not accepted.",
        "### Preparation steps",
    ]
    numbered: list[tuple[str, str]] = []
    block: list[str] = []
    for step in HANDBOOK_STEPS:
        if step is None:
            interruption = "Crews confirm their assignment by email."
            document.add_paragraph(interruption)
            lines += ["\n".join(block), interruption]
            block = []
            continue
        number, text, num_id, level = step
        _numbered(document, text, num_id, level)
        block.append(f"{'    ' * level}{number} {text}")
        numbered.append((number, text))
    lines.append("\n".join(block))
    document.add_heading("Review steps", level=3)
    for number, text in HANDBOOK_REVIEW:
        _numbered(document, text, _RESTARTED, 0)
        numbered.append((number, text))
    lines += ["### Review steps", "\n".join(f"{number} {text}" for number, text in HANDBOOK_REVIEW)]
    _tracked_change(document)
    lines.append("The next review is on Friday.")
    document.add_heading("Escalation", level=4)
    document.add_paragraph("Deviations above ten percent go to the operations director.")
    document.add_paragraph("Late deliveries", style="List Bullet")
    document.add_paragraph("Broken equipment", style="List Bullet")
    document.add_paragraph("Vehicles", style="List Bullet 2")
    lines += [
        "#### Escalation",
        "Deviations above ten percent go to the operations director.",
        "- Late deliveries\n- Broken equipment\n    - Vehicles",
    ]
    document.add_heading("Crew figures", level=2)
    rows = HANDBOOK_CREWS.rows
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            if (r, c) not in HANDBOOK_CREWS.covered:
                table.cell(r, c).text = text
    table.cell(0, 0).merge(table.cell(1, 0)).text = "Region"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Crews"
    table.cell(0, 3).merge(table.cell(1, 3)).text = "Budget"
    document.add_paragraph("Budgets are in euros.")
    vehicles = document.add_table(rows=3, cols=3)
    for r, row in enumerate(HANDBOOK_VEHICLES.rows):
        for c, text in enumerate(row):
            vehicles.cell(r, c).text = text
    _content_control(document, "Owner: the operations office.")
    document.add_paragraph("The handbook is reviewed every spring.")
    lines += [
        "## Crew figures",
        pipe(HANDBOOK_CREWS),
        "Budgets are in euros.",
        pipe(HANDBOOK_VEHICLES),
        "Owner: the operations office.",
        "The handbook is reviewed every spring.",
    ]
    path = folder / "handbook.docx"
    document.save(str(path))
    return Generated(path, "\n\n".join(lines), 1, [HANDBOOK_CREWS, HANDBOOK_VEHICLES], numbered)


DECK_CREWS = KnownTable(
    [["Region", "Crews", "Crews"], ["Region", "Spring", "Autumn"], ["North", "4", "5"], ["South", "3", ""]],
    covered={(0, 2), (1, 0)},
)


def _autonumber(paragraph: object) -> None:
    paragraph._p.get_or_add_pPr().append(  # type: ignore[attr-defined]
        parse_xml(f'<a:buAutoNum {pptx_nsdecls("a")} type="arabicPeriod"/>')
    )


def field_deck_pptx(folder: Path) -> Generated:
    """Bullets at three levels, notes on two slides, a table merged across rows and columns, a hidden
    slide, numbered text-box paragraphs, a group of text boxes, a slide without a title."""
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Field season review"
    body = first.placeholders[1].text_frame
    bullets = [
        ("Surveys completed on time", 0),
        ("North region ahead of plan", 1),
        ("Two crews added in May", 2),
        ("Budget within limits", 0),
    ]
    body.text = bullets[0][0]
    for text, level in bullets[1:]:
        paragraph = body.add_paragraph()
        paragraph.text, paragraph.level = text, level
    first.notes_slide.notes_text_frame.text = "Open with the survey numbers before the budget."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Crew figures"
    rows = DECK_CREWS.rows
    shape = second.shapes.add_table(len(rows), 3, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            if (r, c) not in DECK_CREWS.covered:
                shape.table.cell(r, c).text = text
    shape.table.cell(0, 1).merge(shape.table.cell(0, 2))
    shape.table.cell(0, 0).merge(shape.table.cell(1, 0))
    second.notes_slide.notes_text_frame.text = "Autumn figures for the south are not in yet."
    hidden = deck.slides.add_slide(deck.slide_layouts[5])
    hidden.shapes.title.text = "Draft ideas nobody should see"
    hidden._element.set("show", "0")
    third = deck.slides.add_slide(deck.slide_layouts[5])
    third.shapes.title.text = "Next steps"
    steps = third.shapes.add_textbox(Inches(1), Inches(1.8), Inches(8), Inches(1.5)).text_frame
    numbered = [("1.", "Hire the new crew leads"), ("2.", "Renew the vehicle leases")]
    steps.text = numbered[0][1]
    steps.add_paragraph().text = numbered[1][1]
    for paragraph in steps.paragraphs:
        _autonumber(paragraph)
    third.shapes.add_textbox(
        Inches(1), Inches(3.5), Inches(8), Inches(0.6)
    ).text_frame.text = "Questions go to the operations office."
    group = third.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(4.5), Inches(3), Inches(0.6)).text_frame.text = "Depot Leeds"
    group.shapes.add_textbox(Inches(5), Inches(4.5), Inches(3), Inches(0.6)).text_frame.text = "Depot York"
    last = deck.slides.add_slide(deck.slide_layouts[6])
    last.shapes.add_textbox(Inches(2), Inches(3), Inches(6), Inches(1)).text_frame.text = "Thank you"
    path = folder / "field_deck.pptx"
    deck.save(str(path))
    reference = "\n\n".join(
        [
            "# Field season review",
            "\n".join(f"{'    ' * level}- {text}" for text, level in bullets),
            "Open with the survey numbers before the budget.",
            "# Crew figures",
            pipe(DECK_CREWS),
            "Autumn figures for the south are not in yet.",
            "# Next steps",
            "\n".join(f"{number} {text}" for number, text in numbered),
            "Questions go to the operations office.",
            "Depot Leeds",
            "Depot York",
            "Thank you",
        ]
    )
    return Generated(path, reference, 4, [DECK_CREWS], numbered)


# (value, number format, what Excel shows)
FORMATTED: list[list[tuple[object, str | None, str]]] = [
    [("Measure", None, "Measure"), ("Value", None, "Value")],
    [("Share done", None, "Share done"), (0.25, "0%", "25%")],
    [("Budget", None, "Budget"), (12000, "#,##0", "12,000")],
    [("Rate", None, "Rate"), (3.5, "0.00", "3.50")],
    [("Approved", None, "Approved"), (True, None, "TRUE")],
    [("Change", None, "Change"), (-42, None, "-42")],
]


def operations_xlsx(folder: Path, inventory: int = 40) -> Generated:
    """A merged title over a table with empty cells, an inventory with dates, an offset table, two tables
    on one sheet, number formats (percent, thousands, fixed decimals, a boolean), an empty sheet, a hidden
    sheet."""
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "Summary"
    crew_rows: list[list[object]] = [
        ["Crew figures 2024", None, None],
        ["Region", "Spring", "Autumn"],
        ["North", 4, 5],
        ["South", 3, None],
        ["West", None, 2],
    ]
    crews = put_rows(summary, 1, 1, crew_rows)
    summary.merge_cells("A1:C1")
    crews.rows[0] = ["Crew figures 2024"] * 3
    crews.covered = {(0, 1), (0, 2)}
    crews.title_rows = 1
    stock = put_rows(
        book.create_sheet("Inventory"),
        1,
        1,
        [["Code", "Item", "Quantity", "Unit price", "Checked"], *inventory_rows(inventory)],
    )
    depots = put_rows(book.create_sheet("Depots"), 4, 3, [["Depot", "City"], ["A", "Leeds"], ["B", "York"]])
    both = book.create_sheet("Contacts")
    people = put_rows(both, 1, 1, [["Name", "Role"], ["Ada", "Lead"], ["Ben", "Driver"]])
    phones = put_rows(
        both,
        7,
        1,
        [
            ["Line", "Number", "Hours"],
            ["Office", "0113 496 0000", "9-17"],
            ["Night", "0113 496 0999", "17-9"],
        ],
    )
    formats = book.create_sheet("Formats")
    for row in FORMATTED:
        formats.append([value for value, _, _ in row])
        for cell, (_, number_format, _) in zip(formats[formats.max_row], row, strict=True):
            if number_format:
                cell.number_format = number_format
    shown_formats = KnownTable([[text for _, _, text in row] for row in FORMATTED])
    book.create_sheet("Empty")
    archive = book.create_sheet("Archive")
    archive.append(["retired figures nobody should see"])
    archive.sheet_state = "hidden"
    path = folder / "operations.xlsx"
    book.save(str(path))
    reference = "\n\n".join(
        [
            "## Summary",
            pipe(crews),
            "## Inventory",
            pipe(stock),
            "## Depots",
            pipe(depots),
            "## Contacts",
            pipe(people),
            pipe(phones),
            "## Formats",
            pipe(shown_formats),
            "## Empty",
        ]
    )
    return Generated(path, reference, 6, [crews, stock, depots, people, phones, shown_formats])


QUALITY_FILES: list[Callable[[Path], Generated]] = [
    support_docx,
    support_pptx,
    support_xlsx,
    handbook_docx,
    field_deck_pptx,
    operations_xlsx,
]
