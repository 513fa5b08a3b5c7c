"""A slide's shape tree as blocks, in reading order.

Reading order is the one a reader of the slide follows: the title placeholder, then the body placeholders
(body, subtitle, content) by their index, then every other shape top to bottom and left to right, group
shapes read the same way inside. Slide numbers, dates, footers and headers are left out. A shape's
position is its own or, for a placeholder that does not set one, the layout's or master's placeholder it
inherits from.

A picture whose bytes are missing (no fill, a relationship that names nothing, a linked file) is still a
picture, with no ref: a damaged picture never fails its slide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.blocks import Block, Cell, ListItem, Table
from pagemill.documents.office.drawingml_picture import picture
from pagemill.documents.office.drawingml_text import A_NS, paragraph_text, text_body_lines
from pagemill.documents.office.ooxml_chart import C_NS, chart_blocks
from pagemill.documents.office.ooxml_package import R_NS, Relationship, part_rels
from pagemill.documents.office.pptx_text import FrameKind, text_frame_blocks
from pagemill.errors import CorruptFile

P_NS: Final = "http://schemas.openxmlformats.org/presentationml/2006/main"
_P: Final = f"{{{P_NS}}}"
_A: Final = f"{{{A_NS}}}"
_R_ID: Final = f"{{{R_NS}}}id"
_MC: Final = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_DGM: Final = "{http://schemas.openxmlformats.org/drawingml/2006/diagram}"
_TITLE_TYPES: Final = frozenset({"title", "ctrTitle"})
_BODY_TYPES: Final = frozenset({"body", "subTitle", "obj"})
_SKIPPED_TYPES: Final = frozenset({"dt", "ftr", "sldNum", "hdr"})
_SHAPE_TAGS: Final = frozenset(f"{_P}{name}" for name in ("sp", "pic", "graphicFrame", "grpSp", "cxnSp"))


@dataclass(slots=True)
class SlideContext:
    """What reading one slide's shapes needs: the package, the slide's part and relationships, and the
    layout and master it inherits placeholders from."""

    package: SafeZip
    rels: dict[str, Relationship]
    layout: etree._Element | None
    master: etree._Element | None


def shape_tree_blocks(tree: etree._Element, context: SlideContext) -> list[Block]:
    """Blocks of a slide's ``p:spTree`` in reading order."""
    ranked: list[tuple[tuple[int, int, int], etree._Element]] = []
    for shape in _shapes(tree):
        placeholder = _placeholder(shape)
        if placeholder is not None and placeholder[0] in _SKIPPED_TYPES:
            continue
        if placeholder is not None and placeholder[0] in _TITLE_TYPES:
            key = (0, placeholder[1], 0)
        elif placeholder is not None and placeholder[0] in _BODY_TYPES:
            key = (1, placeholder[1], 0)
        else:
            top, left = _offset(shape, placeholder, context)
            key = (2, top, left)
        ranked.append((key, shape))
    ranked.sort(key=lambda item: item[0])
    blocks: list[Block] = []
    for _, shape in ranked:
        blocks.extend(_shape_blocks(shape, context))
    return blocks


def _shapes(container: etree._Element) -> Iterator[etree._Element]:
    """The shapes directly in a tree or group; markup-compatibility wrappers give their fallback shapes."""
    for child in container:
        if child.tag in _SHAPE_TAGS:
            yield child
        elif child.tag == f"{_MC}AlternateContent":
            choice = child.find(f"{_MC}Fallback")
            if choice is None:
                choice = child.find(f"{_MC}Choice")
            if choice is not None:
                yield from _shapes(choice)


def _placeholder(shape: etree._Element) -> tuple[str, int] | None:
    ph = shape.find(f"*/{_P}nvPr/{_P}ph")
    if ph is None:
        return None
    try:
        idx = int(ph.get("idx", "0"))
    except ValueError:
        idx = 0
    return ph.get("type", "obj"), idx


def _offset(
    shape: etree._Element, placeholder: tuple[str, int] | None, context: SlideContext
) -> tuple[int, int]:
    for candidate in _inheritance(shape, placeholder, context):
        off = candidate.find(f"{_P}spPr/{_A}xfrm/{_A}off")
        if off is None:
            off = candidate.find(f"{_P}xfrm/{_A}off")
        if off is None:
            off = candidate.find(f"{_P}grpSpPr/{_A}xfrm/{_A}off")
        if off is not None:
            try:
                return int(off.get("y", "0")), int(off.get("x", "0"))
            except ValueError:
                return 0, 0
    return 0, 0


def _inheritance(
    shape: etree._Element, placeholder: tuple[str, int] | None, context: SlideContext
) -> list[etree._Element]:
    """The shape, then the layout's and master's placeholders it inherits from."""
    chain = [shape]
    if placeholder is None:
        return chain
    ph_type, idx = placeholder
    layout_shape = _find_placeholder(context.layout, ph_type, idx)
    if layout_shape is not None:
        chain.append(layout_shape)
        layout_ph = _placeholder(layout_shape)
        ph_type = layout_ph[0] if layout_ph else ph_type
    master_type = "title" if ph_type in _TITLE_TYPES else "body" if ph_type in _BODY_TYPES else ph_type
    master_shape = _find_placeholder(context.master, master_type, None)
    if master_shape is not None:
        chain.append(master_shape)
    return chain


def _find_placeholder(root: etree._Element | None, ph_type: str, idx: int | None) -> etree._Element | None:
    if root is None:
        return None
    by_type = None
    for shape in root.iter(f"{_P}sp"):
        found = _placeholder(shape)
        if found is None:
            continue
        if idx is not None and idx > 0 and found[1] == idx:
            return shape
        if by_type is None and (found[0] == ph_type or {found[0], ph_type} <= _TITLE_TYPES):
            by_type = shape
    return by_type


def _inherited_styles(
    shape: etree._Element, placeholder: tuple[str, int] | None, context: SlideContext
) -> list[etree._Element]:
    styles = [
        style
        for ancestor in _inheritance(shape, placeholder, context)[1:]
        if (style := ancestor.find(f"{_P}txBody/{_A}lstStyle")) is not None
    ]
    if placeholder is not None and placeholder[0] in _BODY_TYPES and context.master is not None:
        body_style = context.master.find(f"{_P}txStyles/{_P}bodyStyle")
        if body_style is not None:
            styles.append(body_style)
    return styles


def _shape_blocks(shape: etree._Element, context: SlideContext) -> list[Block]:
    tag = shape.tag
    if tag == f"{_P}sp":
        placeholder = _placeholder(shape)
        kind: FrameKind = "other"
        if placeholder is not None:
            kind = (
                "title"
                if placeholder[0] in _TITLE_TYPES
                else "body"
                if placeholder[0] in _BODY_TYPES
                else kind
            )
        styles = _inherited_styles(shape, placeholder, context) if placeholder is not None else []
        return text_frame_blocks(shape.find(f"{_P}txBody"), kind, styles, context.rels)
    if tag == f"{_P}pic":
        return [picture(shape, f"{_P}nvPicPr", f"{_P}blipFill", context.package, context.rels)]
    if tag == f"{_P}graphicFrame":
        return _graphic_frame_blocks(shape, context)
    if tag == f"{_P}grpSp":
        return shape_tree_blocks(shape, context)
    return []


def _graphic_frame_blocks(frame: etree._Element, context: SlideContext) -> list[Block]:
    data = frame.find(f"{_A}graphic/{_A}graphicData")
    if data is None:
        return []
    table = data.find(f"{_A}tbl")
    if table is not None:
        return [_table(table, context.rels)]
    chart = data.find(f"{{{C_NS}}}chart")
    if chart is not None:
        rel = context.rels.get(chart.get(_R_ID, ""))
        return chart_blocks(context.package, rel.part if rel is not None else None)
    diagram = data.find(f"{_DGM}relIds")
    if diagram is not None:
        return _diagram_blocks(diagram, context)
    # An embedded object (a spreadsheet, an equation) shows as its picture.
    pic = data.find(f".//{_P}pic")
    if pic is not None:
        return [picture(pic, f"{_P}nvPicPr", f"{_P}blipFill", context.package, context.rels)]
    return []


def _table(table: etree._Element, rels: dict[str, Relationship]) -> Table:
    grid_cols = len(table.findall(f"{_A}tblGrid/{_A}gridCol"))
    cells: list[Cell] = []
    rows = table.findall(f"{_A}tr")
    n_cols = grid_cols
    for row_index, row in enumerate(rows):
        for col_index, cell in enumerate(row.iterfind(f"{_A}tc")):
            if _true(cell.get("hMerge")) or _true(cell.get("vMerge")):
                continue
            texts = [paragraph_text(p, rels) for p in cell.iterfind(f"{_A}txBody/{_A}p")]
            text = "\n".join(plain.strip() for plain, _ in texts if plain.strip())
            md = "\n".join(markdown.strip() for plain, markdown in texts if plain.strip())
            row_span = min(_span(cell.get("rowSpan")), len(rows) - row_index)
            col_span = _span(cell.get("gridSpan"))
            n_cols = max(n_cols, col_index + col_span)
            cells.append(
                Cell(
                    text,
                    row_index,
                    col_index,
                    row_span,
                    col_span,
                    md=md if md != text else None,
                    header=row_index == 0,
                )
            )
    return Table(cells=cells, n_rows=len(rows), n_cols=n_cols, header_rows=1 if rows else 0)


def _true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "on")


def _span(value: str | None) -> int:
    try:
        return min(max(int(value or "1"), 1), 1000)
    except ValueError:
        return 1


def _diagram_blocks(relids: etree._Element, context: SlideContext) -> list[Block]:
    """A SmartArt diagram's text: one list item per node of its data model, in the model's order."""
    rel = context.rels.get(relids.get(f"{{{R_NS}}}dm", ""))
    if rel is None or rel.part is None or not context.package.has(rel.part):
        return []
    try:
        model = context.package.xml(rel.part)
    except CorruptFile:
        return []
    blocks: list[Block] = []
    for point in model.iter(f"{_DGM}pt"):
        if point.get("type", "node") != "node":
            continue
        text = " ".join(text_body_lines(point.find(f"{_DGM}t")))
        if text:
            blocks.append(ListItem(text))
    return blocks


def notes_text(package: SafeZip, notes_part: str) -> str:
    """The speaker notes of a notes slide: its body placeholder's paragraphs."""
    root = package.xml(notes_part)
    lines: list[str] = []
    for shape in root.iter(f"{_P}sp"):
        placeholder = _placeholder(shape)
        if placeholder is not None and placeholder[0] == "body":
            lines.extend(text_body_lines(shape.find(f"{_P}txBody")))
    return "\n".join(lines)


def layout_and_master(package: SafeZip, rels: dict[str, Relationship]) -> tuple[str | None, str | None]:
    """The parts of a slide's layout and of that layout's master."""
    layout = next((r.part for r in rels.values() if r.is_type("/slideLayout") and r.part), None)
    if layout is None or not package.has(layout):
        return None, None
    master = next(
        (r.part for r in part_rels(package, layout).values() if r.is_type("/slideMaster") and r.part), None
    )
    return layout, master if master is not None and package.has(master) else None
