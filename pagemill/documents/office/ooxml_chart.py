"""A DrawingML chart part (``c:chartSpace``, in PPTX and XLSX) as blocks: its title, a picture standing for
the chart (it has no stored image) labelled with its kind, and its data as a table.

The data comes from the values cached in the chart part (what the chart shows), not from the embedded
workbook: a row per category (a scatter chart's x values), a column per series. A chart whose series
hold no cached values is the picture and title alone.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from pagemill.documents.office.archive import SafeZip
from pagemill.documents.office.blocks import Block, Cell, Image, Paragraph, Table
from pagemill.documents.office.drawingml_text import text_body_lines
from pagemill.errors import CorruptFile

C_NS: Final = "http://schemas.openxmlformats.org/drawingml/2006/chart"
_C: Final = f"{{{C_NS}}}"
_KINDS: Final = {
    "barChart": "Bar chart",
    "bar3DChart": "3-D bar chart",
    "lineChart": "Line chart",
    "line3DChart": "3-D line chart",
    "pieChart": "Pie chart",
    "pie3DChart": "3-D pie chart",
    "ofPieChart": "Pie chart",
    "doughnutChart": "Doughnut chart",
    "areaChart": "Area chart",
    "area3DChart": "3-D area chart",
    "scatterChart": "Scatter chart",
    "bubbleChart": "Bubble chart",
    "radarChart": "Radar chart",
    "stockChart": "Stock chart",
    "surfaceChart": "Surface chart",
    "surface3DChart": "3-D surface chart",
}
# A chart's table is for reading, not a data dump: a chart of more points is the picture alone.
_MAX_TABLE_CELLS: Final = 10_000


def chart_blocks(package: SafeZip, part: str | None) -> list[Block]:
    """The chart in ``part`` as blocks; a chart part that is missing or damaged is a bare picture (a
    broken chart must not fail its slide or sheet)."""
    if part is None or not package.has(part):
        return [Image(ref=None, alt="Chart")]
    try:
        root = package.xml(part)
    except CorruptFile:
        return [Image(ref=None, alt="Chart")]
    chart = root.find(f"{_C}chart")
    if chart is None:
        return [Image(ref=None, alt="Chart")]
    plots = [
        child
        for child in chart.iterfind(f"{_C}plotArea/*")
        if isinstance(child.tag, str) and child.tag.endswith("Chart")
    ]
    series = [ser for plot in plots for ser in plot.iterfind(f"{_C}ser")]
    kind = _KINDS.get(etree.QName(plots[0]).localname, "Chart") if plots else "Chart"
    blocks: list[Block] = []
    title = _title(chart, series)
    if title:
        blocks.append(Paragraph(title))
    blocks.append(Image(ref=None, alt=kind))
    table = _data_table(series)
    if table is not None:
        blocks.append(table)
    return blocks


def _title(chart: etree._Element, series: list[etree._Element]) -> str:
    title = chart.find(f"{_C}title")
    if title is None:
        return ""
    rich = title.find(f"{_C}tx/{_C}rich")
    if rich is not None:
        return " ".join(text_body_lines(rich))
    reference = title.find(f"{_C}tx/{_C}strRef")
    if reference is not None:
        return " ".join(_points(reference).values())
    deleted = chart.find(f"{_C}autoTitleDeleted")
    if deleted is not None and deleted.get("val") in ("1", "true"):
        return ""
    # A title without text of its own shows the name of the chart's only series.
    return _series_name(series[0], 0) if len(series) == 1 else ""


def _data_table(series: list[etree._Element]) -> Table | None:
    columns: list[tuple[str, dict[int, str]]] = []
    categories: dict[int, str] = {}
    for index, ser in enumerate(series):
        values = _points(ser.find(f"{_C}val")) or _points(ser.find(f"{_C}yVal"))
        if not values:
            continue
        columns.append((_series_name(ser, index), values))
        if not categories:
            categories = _points(ser.find(f"{_C}cat")) or _points(ser.find(f"{_C}xVal"))
    if not columns:
        return None
    n_points = max(max(values) for _, values in columns) + 1
    if categories:
        n_points = max(n_points, max(categories) + 1)
    if n_points * (len(columns) + 1) > _MAX_TABLE_CELLS:
        return None
    cells = [Cell("", 0, 0, header=True)]
    cells += [Cell(name, 0, col, header=True) for col, (name, _) in enumerate(columns, start=1)]
    for point in range(n_points):
        cells.append(Cell(categories.get(point, str(point + 1)), point + 1, 0))
        cells += [
            Cell(values.get(point, ""), point + 1, col) for col, (_, values) in enumerate(columns, start=1)
        ]
    return Table(cells=cells, n_rows=n_points + 1, n_cols=len(columns) + 1, header_rows=1)


def _series_name(ser: etree._Element, index: int) -> str:
    tx = ser.find(f"{_C}tx")
    if tx is not None:
        direct = str(tx.findtext(f"{_C}v") or "").strip()
        if direct:
            return direct
        names = _points(tx.find(f"{_C}strRef"))
        if names:
            return " ".join(names.values())
    return f"Series {index + 1}"


def _points(data: etree._Element | None) -> dict[int, str]:
    """The cached points under a ``c:cat``/``c:val``/``c:strRef``... by index (a multi-level category's
    innermost level)."""
    if data is None:
        return {}
    cache = None
    for tag in ("strCache", "numCache", "strLit", "numLit"):
        cache = data.find(f".//{_C}{tag}")
        if cache is not None:
            break
    if cache is None:
        level = data.find(f".//{_C}multiLvlStrCache/{_C}lvl")
        if level is None:
            return {}
        cache = level
    numeric = etree.QName(cache).localname.startswith("num")
    points: dict[int, str] = {}
    for point in cache.iterfind(f"{_C}pt"):
        try:
            index = int(point.get("idx", ""))
        except ValueError:
            continue
        if 0 <= index <= _MAX_TABLE_CELLS:
            text = (point.findtext(f"{_C}v") or "").strip()
            points[index] = number_text(text) if numeric else text
    return points


def number_text(text: str) -> str:
    """A number as a spreadsheet shows it in General format: integers without ".0", floats without binary
    noise (15 significant digits); text that is not a number unchanged."""
    try:
        value = float(text)
    except ValueError:
        return text
    return format_general(value)


def format_general(value: float) -> str:
    """``value`` in General format (``3``, ``0.3``, ``1.5E+20``)."""
    if value != value or value in (float("inf"), float("-inf")):
        return "#NUM!"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.15g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}E{exponent[0]}{exponent[1:].lstrip('0').zfill(2)}"
    return text
