"""The XLSX reader: sheets as pages of their separate tables, charts and pictures, with workbooks written at
test time by openpyxl, or as raw package XML (:func:`.test_xlsx_cells.raw_workbook`) where openpyxl cannot
write what is needed (huge or hostile sheets)."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.drawing.image import Image as XlImage
from PIL import Image as PilImage

from pagemill.documents.office.blocks import Cell, Heading, Image, Paragraph, Table
from pagemill.documents.office.render import page_markdown
from pagemill.documents.office.xlsx_tables import sheet_tables
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings
from tests.unit.documents.office.test_xlsx_cells import (
    CONTENT_TYPES,
    LIMITS,
    MAIN,
    ROOT_RELS,
    WORKBOOK,
    WORKBOOK_RELS,
    error_code,
    raw_workbook,
    read,
)


def _png() -> bytes:
    buffer = io.BytesIO()
    PilImage.new("RGB", (30, 20), (0, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def workbook(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """Sheets: data with two tables, merged cells and typed values; a chart and a picture; hidden ones."""
    folder = tmp_path_factory.mktemp("xlsx")
    wb = Workbook()
    data = wb.active
    data.title = "Data"
    data.append(["Name", "Amount", "Share", "When", "Done", "Note"])
    data.append(["alpha", 1, 0.25, dt.datetime(2024, 3, 1), True, None])
    data.append(["beta", 0.1 + 0.2, 0.5, dt.datetime(2024, 3, 2, 14, 30), False, "late"])
    data.append(["gamma", 1234.5, None, None, None, None])
    for row in range(2, 5):
        data.cell(row, 3).number_format = "0%"
    data["H1"] = "Region"
    data["I1"] = "Total"
    data["H2"] = "North"
    data["I2"] = 10
    data["H3"] = "South"
    data["I3"] = 20
    data["A7"] = "Merged title"
    data.merge_cells("A7:B8")
    data["C7"] = "side"
    data["C8"] = "below side"
    charts = wb.create_sheet("Charts")
    charts.append(["Quarter", "Sales"])
    for quarter, sales in (("Q1", 5), ("Q2", 7)):
        charts.append([quarter, sales])
    chart = BarChart()
    chart.title = "Sales by quarter"
    chart.add_data(Reference(charts, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    charts.add_chart(chart, "D2")
    png = folder / "blue.png"
    png.write_bytes(_png())
    charts.add_image(XlImage(str(png)), "D20")
    hidden = wb.create_sheet("Secret")
    hidden["A1"] = "hidden value"
    hidden.sheet_state = "hidden"
    very = wb.create_sheet("VerySecret")
    very["A1"] = "very hidden"
    very.sheet_state = "veryHidden"
    wb.create_sheet("Empty")
    path = folder / "book.xlsx"
    wb.save(path)
    return path, png.read_bytes()


def test_sheets_are_pages_named_and_flagged(workbook: tuple[Path, bytes]) -> None:
    document = read(workbook[0])
    assert document.reader == "xlsx"
    assert [(p.kind, p.title, p.hidden) for p in document.pages] == [
        ("sheet", "Data", False),
        ("sheet", "Charts", False),
        ("sheet", "Secret", True),
        ("sheet", "VerySecret", True),
        ("sheet", "Empty", False),
    ]
    assert document.pages[2].blocks[0] == Heading("Secret", level=2)
    assert document.pages[4].blocks == [Heading("Empty", level=2)]


def test_separate_tables_typed_values_and_merged_cells(workbook: tuple[Path, bytes]) -> None:
    page = read(workbook[0]).pages[0]
    assert page_markdown(page) == (
        "## Data\n\n"
        "| Name | Amount | Share | When | Done | Note |\n"
        "| - | - | - | - | - | - |\n"
        "| alpha | 1 | 25% | 2024-03-01 | TRUE |  |\n"
        "| beta | 0.3 | 50% | 2024-03-02 14:30:00 | FALSE | late |\n"
        "| gamma | 1234.5 |  |  |  |  |\n\n"
        "| Region | Total |\n| - | - |\n| North | 10 |\n| South | 20 |\n\n"
        "| Merged title | Merged title | side |\n| - | - | - |\n| Merged title | Merged title | below side |"
    )
    merged = page.blocks[3]
    assert isinstance(merged, Table)
    assert merged.cells[0] == Cell("Merged title", 0, 0, row_span=2, col_span=2, header=True)
    assert "None" not in page_markdown(page) and "nan" not in page_markdown(page).lower()


def test_chart_and_picture_of_a_sheet(workbook: tuple[Path, bytes]) -> None:
    document = read(workbook[0])
    blocks = document.pages[1].blocks
    assert blocks[:2] == [Heading("Charts", 2), blocks[1]]
    assert isinstance(blocks[1], Table)
    # openpyxl writes no cached chart values: the chart is its title and picture.
    assert blocks[2:4] == [Paragraph("Sales by quarter"), Image(ref=None, alt="Bar chart")]
    picture = blocks[4]
    assert isinstance(picture, Image) and picture.ref == "xl/media/image1.png"
    assert document.image_bytes(picture.ref) == workbook[1]


def test_streaming_a_big_sheet_keeps_memory_bounded(tmp_path: Path) -> None:
    # 400,000 cells whose text is blank: the result is empty, so what the read holds is the stream's own.
    path = tmp_path / "blank.xlsx"
    row = "".join(f'<c r="{col}{{r}}" t="s"><v>0</v></c>' for col in "ABCDEFGHIJ")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        package.writestr("[Content_Types].xml", CONTENT_TYPES.format(extra=""))
        package.writestr("_rels/.rels", ROOT_RELS)
        package.writestr("xl/workbook.xml", WORKBOOK.format(pr=""))
        package.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.format(extra=""))
        package.writestr(
            "xl/sharedStrings.xml", f'<sst xmlns="{MAIN}"><si><t xml:space="preserve"> </t></si></sst>'
        )
        with package.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(f'<worksheet xmlns="{MAIN}"><sheetData>'.encode())
            for r in range(1, 40_001):
                sheet.write(f'<row r="{r}">{row.format(r=r)}</row>'.encode())
            sheet.write(b"</sheetData></worksheet>")
        xml_bytes = package.getinfo("xl/worksheets/sheet1.xml").file_size
    child = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from pagemill.documents.office.document import ReadOptions\n"
        "from pagemill.documents.office.xlsx import read_xlsx\n"
        "from pagemill.settings import LimitSettings\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "document = read_xlsx(Path(sys.argv[1]), ReadOptions(), LimitSettings())\n"
        "assert len(document.pages[0].blocks) == 1, document.pages[0].blocks\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    growth_bytes = int(done.stdout) * 1024  # ru_maxrss is in KiB on Linux
    # A tree of the sheet would take several times its XML; streaming takes a small fraction of it.
    assert xml_bytes > 12_000_000
    assert growth_bytes < xml_bytes // 2, (growth_bytes, xml_bytes)


def test_a_row_repeating_cells_past_the_grid_width_is_corrupt(tmp_path: Path) -> None:
    path = raw_workbook(
        tmp_path / "repeat.xlsx", '<row r="1">' + '<c r="A1"><v>1</v></c>' * 16_385 + "</row>"
    )
    assert error_code(path) == "CORRUPT_FILE"


# --- tables ----------------------------------------------------------------------------------------


def _texts(table: Table) -> list[list[str | None]]:
    return [[c.text if c else None for c in row] for row in table.grid()]


def test_diagonal_groups_are_separate_tables_attached_cells_join() -> None:
    values = {
        0: {0: "a", 1: "b"},
        1: {0: "c", 1: "d"},
        2: {2: "diagonal"},
        3: {2: "x"},
        4: {1: "left", 2: "y"},
    }
    tables = sheet_tables(values, [], 1000)
    assert [(position, t.n_rows, t.n_cols) for position, t in tables] == [((0, 0), 2, 2), ((2, 1), 3, 2)]
    assert _texts(tables[1][1]) == [
        [None, "diagonal"],
        [None, "x"],
        ["left", "y"],
    ]


def test_a_corner_cell_under_a_tables_columns_belongs_to_it() -> None:
    # "2" meets the rest only at the corner of "3" (the empty cells beside and above it are part of the
    # table): it is inside the table's columns on its rows, so it stays in it. "outside" meets "2" only at
    # a corner too, but right of the table's columns: a table of its own.
    values = {
        0: {0: "Region", 1: "Spring", 2: "Autumn"},
        1: {0: "South", 1: "3"},
        2: {0: "West", 2: "2"},
        3: {3: "outside"},
        5: {0: "a", 1: "b", 2: "c"},
        6: {1: "d"},
        7: {0: "e", 2: "f"},  # both only at corners of "d", both under the columns of a-c
    }
    tables = sheet_tables(values, [], 1000)
    assert [(position, t.n_rows, t.n_cols) for position, t in tables] == [
        ((0, 0), 3, 3),
        ((3, 3), 1, 1),
        ((5, 0), 3, 3),
    ]
    assert _texts(tables[0][1]) == [["Region", "Spring", "Autumn"], ["South", "3", None], ["West", None, "2"]]
    assert _texts(tables[2][1]) == [["a", "b", "c"], [None, "d", None], ["e", None, "f"]]


def test_a_corner_cell_under_a_merged_title_stays_in_the_table(tmp_path: Path) -> None:
    wb = Workbook()
    sheet = wb.active
    sheet.title = "Summary"
    for row in (
        ["Crew figures 2024"],
        ["Region", "Spring", "Autumn"],
        ["North", 4, 5],
        ["South", 3],
        ["West"],
    ):
        sheet.append(row)
    sheet["C5"] = 2
    sheet.merge_cells("A1:C1")
    wb.save(tmp_path / "crews.xlsx")
    assert page_markdown(read(tmp_path / "crews.xlsx").pages[0]) == (
        "## Summary\n\n"
        "| Crew figures 2024 | Crew figures 2024 | Crew figures 2024 |\n| - | - | - |\n"
        "| Region | Spring | Autumn |\n| North | 4 | 5 |\n| South | 3 |  |\n| West |  | 2 |"
    )


def test_overlapping_merges_are_ignored() -> None:
    values = {0: {0: "a"}, 5: {5: "b"}}
    tables = sheet_tables(values, [(0, 0, 5, 5), (0, 0, 5, 5)], 40)
    assert [t.n_rows for _, t in tables] == [1, 1]


# --- damaged and hostile files ----------------------------------------------------------------------


def test_truncated_zip_is_corrupt(workbook: tuple[Path, bytes], tmp_path: Path) -> None:
    data = workbook[0].read_bytes()
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(data[: len(data) * 2 // 3])
    assert error_code(broken) == "CORRUPT_FILE"


def test_malformed_sheet_xml_is_corrupt(tmp_path: Path) -> None:
    path = raw_workbook(tmp_path / "malformed.xlsx", '<row r="1"><c r="A1"><v>1</v></row>')
    assert error_code(path) == "CORRUPT_FILE"


def test_billion_laughs_in_shared_strings_is_an_archive_bomb(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f'<sst xmlns="{MAIN}" count="1" uniqueCount="1"><si><t>&lol2;</t></si></sst>'
    )
    path = raw_workbook(tmp_path / "bomb.xlsx", '<row r="1"><c r="A1" t="s"><v>0</v></c></row>', laughs)
    assert error_code(path) == "ARCHIVE_BOMB"


def test_a_lone_far_cell_counts_its_whole_used_range(tmp_path: Path) -> None:
    path = raw_workbook(tmp_path / "far.xlsx", '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
    assert error_code(path) == "TOO_MANY_CELLS"


def _million_rows(path: Path, dimension: bool) -> Path:
    """A 1,000,000-row, 3-column sheet streamed into the zip (never held in memory whole)."""
    row = b"<row><c><v>1</v></c><c><v>2</v></c><c><v>3</v></c></row>" * 10_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        package.writestr("[Content_Types].xml", CONTENT_TYPES.format(extra=""))
        package.writestr("_rels/.rels", ROOT_RELS)
        package.writestr("xl/workbook.xml", WORKBOOK.format(pr=""))
        package.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.format(extra=""))
        with package.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}">'.encode())
            if dimension:
                sheet.write(b'<dimension ref="A1:C1000000"/>')
            sheet.write(b"<sheetData>")
            for _ in range(100):
                sheet.write(row)
            sheet.write(b"</sheetData></worksheet>")
    return path


@pytest.mark.parametrize("dimension", [True, False])
def test_million_row_sheet_is_refused_quickly(tmp_path: Path, dimension: bool) -> None:
    path = _million_rows(tmp_path / "million.xlsx", dimension)
    started = time.monotonic()
    with pytest.raises(PagemillError) as caught:
        read(path)
    assert caught.value.code == "TOO_MANY_CELLS"
    assert caught.value.details["sheet"] == "Raw"
    assert caught.value.details["max_cells"] == LIMITS.max_sheet_cells
    assert time.monotonic() - started < 10


def test_cells_hidden_from_the_quick_count_are_caught_by_the_parse(tmp_path: Path) -> None:
    # Tags the byte count does not see (a line break after the name) still count.
    rows = "".join(
        f'<row r="{r}"><c\nr="A{r}"><v>1</v></c><c\nr="B{r}"><v>2</v></c></row>' for r in range(1, 40)
    )
    path = raw_workbook(tmp_path / "sneaky.xlsx", rows)
    assert error_code(path, LimitSettings(max_sheet_cells=50)) == "TOO_MANY_CELLS"


# --- corpus -----------------------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "char_sim", "word_f1"),
    [("docling__xlsx_01.xlsx", 0.98, 0.98), ("docling__xlsx_06_edge_cases_.xlsx", 0.98, 0.98)],
)
def test_corpus_scores(corpus_dir: Path, name: str, char_sim: float, word_f1: float) -> None:
    path = corpus_dir / "office" / name
    if not path.exists():
        pytest.skip(f"{name} is not in the corpus")
    sys.path.insert(0, str(corpus_dir.parent / "tools"))
    from score import score

    document = read(path)
    text = "\n\n".join(page_markdown(page) for page in document.pages if not page.hidden)
    with warnings.catch_warnings():
        # The scorer reads the reference without closing it.
        warnings.simplefilter("ignore", ResourceWarning)
        result = score(str(path) + ".gt.md", text)
    assert result["char_sim"] >= char_sim
    assert result["word_f1"] >= word_f1


def test_chart_sheet_is_a_page_of_its_chart(tmp_path: Path) -> None:
    from openpyxl.chart import PieChart

    wb = Workbook()
    data = wb.active
    data.title = "Data"
    for row in (["kind", "count"], ["a", 1], ["b", 2]):
        data.append(row)
    pie = PieChart()
    pie.title = "Kinds"
    pie.add_data(Reference(data, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    wb.create_chartsheet("Pie").add_chart(pie)
    wb.save(tmp_path / "chartsheet.xlsx")
    page = read(tmp_path / "chartsheet.xlsx").pages[1]
    assert (page.title, page.blocks) == (
        "Pie",
        [Heading("Pie", 2), Paragraph("Kinds"), Image(ref=None, alt="Pie chart")],
    )
