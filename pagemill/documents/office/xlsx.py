"""The XLSX reader: each sheet is a page (kind "sheet") of its name as a heading, then its tables (a sheet
holds as many as it has separate groups of cells) with its charts, pictures and text boxes between them
where they sit on the sheet. Hidden and very hidden sheets are pages flagged ``hidden``.

Every sheet is measured by streaming its XML before any value is loaded (:mod:`xlsx_scan`): a sheet
over ``max_sheet_cells`` fails the document with TooManyCells in seconds and bounded memory, and its merged
ranges and drawing are noted. Values are then streamed from the same XML (:mod:`xlsx_cells`: cached values,
or formulas when asked), within the used range the scan measured, with the workbook's shared strings,
number styles and date system (:mod:`xlsx_book`). Every XML part is checked for entity declarations first,
so no parser ever meets one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip, open_archive
from pagemill.documents.office.blocks import Block, Heading, OfficePage
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.ooxml_package import (
    R_NS,
    main_part,
    part_loader,
    part_rels,
    refuse_entity_declarations,
)
from pagemill.documents.office.xlsx_book import Book, read_book
from pagemill.documents.office.xlsx_cells import sheet_values
from pagemill.documents.office.xlsx_drawing import drawing_blocks, sheet_drawing_part
from pagemill.documents.office.xlsx_scan import SheetScan, scan_sheet
from pagemill.documents.office.xlsx_tables import sheet_tables
from pagemill.errors import CorruptFile, TooManyPages
from pagemill.settings import LimitSettings

_HIDDEN_STATES: Final = ("hidden", "veryHidden")


@dataclass(frozen=True, slots=True)
class _Sheet:
    name: str
    part: str
    hidden: bool
    chartsheet: bool


def read_xlsx(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read an Excel workbook: one page (kind "sheet") per worksheet or chart sheet, hidden ones flagged."""
    with open_archive(path, limits) as package:
        # iterparse is run with entities off, but a part declaring them is a bomb whatever reads it.
        refuse_entity_declarations(package)
        workbook_part = main_part(package, "xl/workbook.xml")
        workbook = package.xml(workbook_part)
        sheets = _sheets(package, workbook_part, workbook)
        if len(sheets) > limits.max_pages:
            raise TooManyPages(pages=len(sheets), max_pages=limits.max_pages)
        scans = {
            sheet.part: scan_sheet(package, sheet.part, sheet.name, limits.max_sheet_cells)
            for sheet in sheets
            if not sheet.chartsheet
        }
        book = read_book(package, workbook_part, workbook)
        pages = [_page(package, book, sheet, scans.get(sheet.part), options, limits) for sheet in sheets]
    return OfficeDocument(pages=pages, reader="xlsx", image_loader=part_loader(path, limits))


def _sheets(package: SafeZip, workbook_part: str, root: etree._Element) -> list[_Sheet]:
    if etree.QName(root).localname != "workbook":
        raise CorruptFile("The workbook part is not a workbook.", reason="main_part")
    rels = part_rels(package, workbook_part)
    sheets = []
    for sheet in root.iterfind("{*}sheets/{*}sheet"):
        rel = rels.get(sheet.get(f"{{{R_NS}}}id", ""))
        name = sheet.get("name")
        if rel is None or rel.part is None or not name or not package.has(rel.part):
            continue
        if not (rel.is_type("/worksheet") or rel.is_type("/chartsheet")):
            continue  # dialog and macro sheets hold no data
        hidden = sheet.get("state", "visible") in _HIDDEN_STATES
        sheets.append(_Sheet(name, rel.part, hidden, rel.is_type("/chartsheet")))
    return sheets


def _page(
    package: SafeZip,
    book: Book,
    sheet: _Sheet,
    scan: SheetScan | None,
    options: ReadOptions,
    limits: LimitSettings,
) -> OfficePage:
    placed: list[tuple[tuple[int, int, int], list[Block]]] = []
    if scan is None:
        drawing = _chartsheet_drawing(package, sheet.part)
    else:
        drawing = sheet_drawing_part(package, sheet.part, scan.drawing)
        values = sheet_values(package, sheet.part, sheet.name, scan, book, options.formulas)
        tables = sheet_tables(values, scan.merges, limits.max_sheet_cells)
        placed += [((top, left, 0), [table]) for (top, left), table in tables]
    placed += [((row, col, 1), blocks) for (row, col), blocks in drawing_blocks(package, drawing)]
    placed.sort(key=lambda item: item[0])
    blocks: list[Block] = [Heading(sheet.name, level=2)]
    for _, group in placed:
        blocks.extend(group)
    return OfficePage(kind="sheet", blocks=blocks, title=sheet.name, hidden=sheet.hidden)


def _chartsheet_drawing(package: SafeZip, part: str) -> str | None:
    try:
        root = package.xml(part)
    except CorruptFile:
        return None
    drawing = root.find("{*}drawing")
    return sheet_drawing_part(package, part, drawing.get(f"{{{R_NS}}}id") if drawing is not None else None)
