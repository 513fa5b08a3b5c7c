"""What a sheet's drawing holds, placed on the sheet's grid: charts (title, picture, data table), pictures
and text boxes, each at the cell its anchor starts in, so they fall between the sheet's tables in reading
order. A drawing that is missing or damaged adds nothing: it never fails the sheet.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.blocks import Block, Paragraph
from pagemill.documents.office.drawingml_picture import picture
from pagemill.documents.office.drawingml_text import A_NS, text_body_lines
from pagemill.documents.office.ooxml_chart import C_NS, chart_blocks
from pagemill.documents.office.ooxml_package import R_NS, Relationship, part_rels
from pagemill.errors import CorruptFile

_XDR: Final = "{http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing}"
_A: Final = f"{{{A_NS}}}"
_ANCHORS: Final = (f"{_XDR}twoCellAnchor", f"{_XDR}oneCellAnchor", f"{_XDR}absoluteAnchor")
# An absolute anchor has no cell: it goes after the cells.
_END: Final = (1 << 31, 0)

PlacedBlocks = tuple[tuple[int, int], list[Block]]


def drawing_blocks(package: SafeZip, drawing_part: str | None) -> list[PlacedBlocks]:
    """Blocks of the drawing part, each group with the (row, column) its anchor starts at, 0-based."""
    if drawing_part is None or not package.has(drawing_part):
        return []
    try:
        root = package.xml(drawing_part)
        rels = part_rels(package, drawing_part)
    except CorruptFile:
        return []
    placed: list[PlacedBlocks] = []
    for anchor in root:
        if anchor.tag not in _ANCHORS:
            continue
        blocks: list[Block] = []
        for item in anchor:
            blocks.extend(_item_blocks(item, package, rels))
        if blocks:
            placed.append((_position(anchor), blocks))
    return placed


def _position(anchor: etree._Element) -> tuple[int, int]:
    start = anchor.find(f"{_XDR}from")
    if start is None:
        return _END
    try:
        return int(start.findtext(f"{_XDR}row") or 0), int(start.findtext(f"{_XDR}col") or 0)
    except ValueError:
        return _END


def _item_blocks(item: etree._Element, package: SafeZip, rels: dict[str, Relationship]) -> list[Block]:
    tag = item.tag
    if tag == f"{_XDR}graphicFrame":
        chart = item.find(f"{_A}graphic/{_A}graphicData/{{{C_NS}}}chart")
        if chart is None:
            return []
        rel = rels.get(chart.get(f"{{{R_NS}}}id", ""))
        return chart_blocks(package, rel.part if rel is not None else None)
    if tag == f"{_XDR}pic":
        return [picture(item, f"{_XDR}nvPicPr", f"{_XDR}blipFill", package, rels)]
    if tag == f"{_XDR}sp":
        return [Paragraph(line) for line in text_body_lines(item.find(f"{_XDR}txBody"))]
    if tag == f"{_XDR}grpSp":
        return [block for child in item for block in _item_blocks(child, package, rels)]
    return []


def sheet_drawing_part(package: SafeZip, sheet_part: str, drawing_id: str | None) -> str | None:
    """The drawing part a sheet's ``<drawing r:id>`` names."""
    if drawing_id is None:
        return None
    rel = part_rels(package, sheet_part).get(drawing_id)
    return rel.part if rel is not None else None
