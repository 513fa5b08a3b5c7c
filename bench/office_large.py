"""Large generated office files for the speed part of ``bench.office_quality``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from docx import Document
from openpyxl import Workbook
from pptx import Presentation

from bench.office_known import WORDS, inventory_rows, put_rows


def large_docx(folder: Path, sections: int = 60) -> Path:
    """One document of ``sections`` headed sections, each with paragraphs, a list and every fifth a table."""
    document = Document()
    for s in range(sections):
        document.add_heading(f"Section {s + 1}", level=2)
        for p in range(4):
            document.add_paragraph(f"Paragraph {p + 1} of section {s + 1}: " + " ".join(WORDS) * 2)
        for item in range(3):
            document.add_paragraph(f"Point {item + 1} of section {s + 1}", style="List Number")
        if s % 5 == 0:
            table = document.add_table(rows=6, cols=4)
            for r in range(6):
                for c in range(4):
                    table.cell(r, c).text = f"r{r}c{c}"
    path = folder / "large.docx"
    document.save(str(path))
    return path


def large_pptx(folder: Path, slides: int = 60) -> Path:
    """``slides`` slides with a title, five bullets and notes."""
    deck = Presentation()
    for s in range(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {s + 1}"
        body = slide.placeholders[1].text_frame
        body.text = f"First point of slide {s + 1}"
        for b in range(4):
            paragraph = body.add_paragraph()
            paragraph.text, paragraph.level = f"Point {b + 2}: {' '.join(WORDS[b:])}", b % 2
        slide.notes_slide.notes_text_frame.text = f"Notes of slide {s + 1}"
    path = folder / "large.pptx"
    deck.save(str(path))
    return path


def large_xlsx(folder: Path, sheets: int = 3, rows: int = 2000) -> Path:
    """``sheets`` sheets of ``rows`` inventory rows."""
    book = Workbook()
    for s in range(sheets):
        sheet = book.active if s == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = f"Stock {s + 1}"
        put_rows(sheet, 1, 1, [["Code", "Item", "Quantity", "Unit price", "Checked"], *inventory_rows(rows)])
    path = folder / "large.xlsx"
    book.save(str(path))
    return path


SPEED_FILES: list[Callable[[Path], Path]] = [large_docx, large_pptx, large_xlsx]
