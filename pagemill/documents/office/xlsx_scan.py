"""A worksheet measured before it is loaded: its used range (checked against ``max_sheet_cells``), its
merged ranges and its drawing, read by streaming the sheet's XML with bounded memory. A row holding more
cell elements than the grid has columns (cells repeating a position) is damaged: refusing it bounds the
row that :mod:`xlsx_cells` holds while it reads the values.

The ``<dimension>`` a sheet declares refuses an oversized sheet at once; a sheet that declares none, or
a smaller one than it holds, is caught by the stream itself, which stops as soon as the used range it has
seen passes the limit. The used range is counted from row 1 and column A (rows x columns), the grid a
spreadsheet reader fills, so a lone cell far down and right counts for the whole rectangle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.errors import CorruptFile, TooManyCells

_REF: Final = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")
_TAGS: Final = ("{*}dimension", "{*}row", "{*}c", "{*}mergeCell", "{*}drawing")
_R_ID: Final = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_MAX_ROWS: Final = 1_048_576
_MAX_COLS: Final = 16_384
_CHUNK_BYTES: Final = 1 << 20
_PROLOG_BYTES: Final = 65536
_TAG_TAIL: Final = 64
_ROOT_PREFIX: Final = re.compile(rb"<([A-Za-z_][\w.-]*):worksheet\b")
_DIMENSION: Final = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?dimension\s+ref=[\"']([^\"']{1,40})[\"']")
_column_cache: dict[str, int] = {}

# (first row, first column, last row, last column), 0-based and inclusive
CellRange = tuple[int, int, int, int]


@dataclass(slots=True)
class SheetScan:
    """What streaming a worksheet found: its used range (1-based last row and column; 0 when empty), its
    merged ranges and the relationship id of its drawing."""

    max_row: int = 0
    max_col: int = 0
    merges: list[CellRange] = field(default_factory=list)
    drawing: str | None = None

    @property
    def cells(self) -> int:
        """Rows x columns of the used range."""
        return self.max_row * self.max_col


def scan_sheet(package: SafeZip, part: str, sheet: str, max_cells: int) -> SheetScan:
    """Stream the worksheet ``part``; TooManyCells as soon as its used range passes ``max_cells``,
    CorruptFile when its XML is broken."""
    _count_cell_tags(package, part, sheet, max_cells)
    return _stream_sheet(package, part, sheet, max_cells)


def _count_cell_tags(package: SafeZip, part: str, sheet: str, max_cells: int) -> None:
    """Refuse an oversized sheet at C speed, before parsing it: by the dimension it declares, then by the
    cell start tags in its bytes. The count is a quick bound, not the check: tags written some other way
    (another prefix, a line break after the name) are left to the parse that follows, which measures
    every cell."""
    cells = 0
    carry = b""
    tags: tuple[bytes, ...] = ()
    with package.open(part) as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            data = carry + chunk
            if not tags:
                declared = _DIMENSION.search(data, 0, _PROLOG_BYTES)
                if declared is not None:
                    _check_dimension(declared.group(1).decode("ascii", "replace"), sheet, max_cells)
                root = _ROOT_PREFIX.search(data, 0, _PROLOG_BYTES)
                prefixes = [b"<", b"<" + root.group(1) + b":"] if root is not None else [b"<"]
                tags = tuple(prefix + b"c" + end for prefix in prefixes for end in (b">", b" ", b"/"))
            # A tag cut at the chunk's end is counted with the next chunk.
            cut = max(data.rfind(b"<", max(len(data) - _TAG_TAIL, 0)), 0) or len(data)
            cells += sum(data.count(tag, 0, cut) for tag in tags)
            carry = data[cut:]
            if cells > max_cells:
                raise TooManyCells(sheet=sheet, cells=cells, max_cells=max_cells)


def _stream_sheet(package: SafeZip, part: str, sheet: str, max_cells: int) -> SheetScan:
    scan = SheetScan()
    row = 0
    col = 0
    in_row = 0  # cell elements of the current row
    with package.open(part) as stream:
        events = etree.iterparse(
            stream, events=("start",), tag=_TAGS, resolve_entities=False, no_network=True, huge_tree=False
        )
        try:
            for _, element in events:
                tag = element.tag
                name = tag[tag.rfind("}") + 1 :]
                if name == "c":
                    in_row += 1
                    if in_row > _MAX_COLS:
                        # Cells repeating a position: the values are read a row at a time, so a row
                        # holds at most the grid's width.
                        raise CorruptFile(
                            "A sheet of the workbook has a row with more cells than columns.", sheet=sheet
                        )
                    col = _cell_column(element.get("r"), col)
                    if col > scan.max_col:
                        scan.max_col = col
                        scan.max_row = max(scan.max_row, row)
                        _check(scan, sheet, max_cells)
                    elif row > scan.max_row:
                        scan.max_row = row
                        _check(scan, sheet, max_cells)
                    if col % 1024 == 0:
                        _drop_previous(element)  # a very long row is freed as it goes
                elif name == "row":
                    row = _row_number(element.get("r"), row)
                    col = in_row = 0
                    _drop_previous(element)
                elif name == "dimension":
                    _check_dimension(element.get("ref", ""), sheet, max_cells)
                elif name == "mergeCell":
                    merge = cell_range(element.get("ref", ""))
                    if merge is not None:
                        scan.merges.append(merge)
                    _drop_previous(element)
                elif name == "drawing":
                    scan.drawing = element.get(_R_ID)
        except etree.XMLSyntaxError as exc:
            raise CorruptFile("A sheet of the workbook is not well-formed XML.", sheet=sheet) from exc
    return scan


def _check(scan: SheetScan, sheet: str, max_cells: int) -> None:
    if scan.cells > max_cells:
        raise TooManyCells(sheet=sheet, cells=scan.cells, max_cells=max_cells)


def _check_dimension(ref: str, sheet: str, max_cells: int) -> None:
    bounds = cell_range(ref)
    if bounds is None:
        return
    cells = (bounds[2] + 1) * (bounds[3] + 1)
    if cells > max_cells:
        raise TooManyCells(sheet=sheet, cells=cells, max_cells=max_cells)


def _drop_previous(element: etree._Element) -> None:
    """Free what the stream has passed: the rows (or cells, or merges) before this one."""
    parent = element.getparent()
    if parent is None:
        return
    previous = element.getprevious()
    while previous is not None:
        parent.remove(previous)
        previous = element.getprevious()


def _row_number(ref: str | None, previous: int) -> int:
    if ref is None:
        return previous + 1
    try:
        number = int(ref)
    except ValueError as exc:
        raise CorruptFile("A sheet of the workbook has a row with a bad number.") from exc
    if not 1 <= number <= _MAX_ROWS:
        raise CorruptFile("A sheet of the workbook has a row outside the grid.")
    return number


def _cell_column(ref: str | None, previous: int) -> int:
    if ref is None:
        return previous + 1
    letters = ref.rstrip("0123456789$").lstrip("$")
    column = _column_cache.get(letters)
    if column is None:
        column = column_number(letters)
        if len(_column_cache) < 20_000:
            _column_cache[letters] = column
    return column


def column_number(letters: str) -> int:
    """1-based column of ``letters`` ("A" -> 1, "AB" -> 28); CorruptFile outside A..XFD."""
    number = 0
    for letter in letters.upper():
        if not "A" <= letter <= "Z":
            raise CorruptFile("A sheet of the workbook has a cell with a bad reference.")
        number = number * 26 + ord(letter) - 64
    if not 1 <= number <= _MAX_COLS:
        raise CorruptFile("A sheet of the workbook has a cell outside the grid.")
    return number


def cell_range(ref: str) -> CellRange | None:
    """A range reference ("B2:C7", or one cell "B2") as 0-based inclusive bounds; None when it is not
    one."""
    parts = ref.split(":")
    if len(parts) > 2:
        return None
    corners = []
    for part in parts:
        match = _REF.match(part.strip())
        if match is None:
            return None
        try:
            column = column_number(match.group(1))
        except CorruptFile:
            return None
        row = int(match.group(2))
        if not 1 <= row <= _MAX_ROWS:
            return None
        corners.append((row - 1, column - 1))
    (r1, c1), (r2, c2) = corners[0], corners[-1]
    return min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2)
