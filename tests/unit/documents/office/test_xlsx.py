"""The XLSX reader: sheets as pages of their separate tables, charts and pictures, with workbooks written at
test time by openpyxl, or as raw package XML where openpyxl cannot write what is needed (cached formula
values, error values, huge or hostile sheets)."""

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
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.render import page_markdown
from pagemill.documents.office.xlsx import read_xlsx
from pagemill.documents.office.xlsx_formulas import move_formula
from pagemill.documents.office.xlsx_tables import sheet_tables
from pagemill.documents.office.xlsx_values import cell_text
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _read(path: Path, limits: LimitSettings = LIMITS, **options: object) -> OfficeDocument:
    return read_xlsx(path, ReadOptions(**options), limits)  # type: ignore[arg-type]


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
    document = _read(workbook[0])
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
    page = _read(workbook[0]).pages[0]
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
    document = _read(workbook[0])
    blocks = document.pages[1].blocks
    assert blocks[:2] == [Heading("Charts", 2), blocks[1]]
    assert isinstance(blocks[1], Table)
    # openpyxl writes no cached chart values: the chart is its title and picture.
    assert blocks[2:4] == [Paragraph("Sales by quarter"), Image(ref=None, alt="Bar chart")]
    picture = blocks[4]
    assert isinstance(picture, Image) and picture.ref == "xl/media/image1.png"
    assert document.image_bytes(picture.ref) == workbook[1]


# --- raw packages -----------------------------------------------------------------------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
    'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.worksheet+xml"/>{extra}</Types>'
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    f'2006/relationships"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">{{pr}}<sheets>'
    '<sheet name="Raw" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    f'2006/relationships"><Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    "{extra}</Relationships>"
)


def _raw_workbook(
    path: Path,
    sheet_data: str,
    shared_strings: str | None = None,
    head: str = "",
    styles: str | None = None,
    date1904: bool = False,
) -> Path:
    """A one-sheet workbook written part by part; ``sheet_data`` is the sheet's rows."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        extra_type = extra_rel = ""
        if shared_strings is not None:
            extra_type = (
                '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
                'officedocument.spreadsheetml.sharedStrings+xml"/>'
            )
            extra_rel = f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
            package.writestr("xl/sharedStrings.xml", shared_strings)
        if styles is not None:
            extra_rel += f'<Relationship Id="rId3" Type="{REL}/styles" Target="styles.xml"/>'
            package.writestr("xl/styles.xml", f'<styleSheet xmlns="{MAIN}">{styles}</styleSheet>')
        package.writestr("[Content_Types].xml", _CONTENT_TYPES.format(extra=extra_type))
        package.writestr("_rels/.rels", _ROOT_RELS)
        package.writestr("xl/workbook.xml", _WORKBOOK.format(pr='<workbookPr date1904="1"/>' * date1904))
        package.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.format(extra=extra_rel))
        package.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}">{head}'
            f"<sheetData>{sheet_data}</sheetData></worksheet>",
        )
    return path


_FORMULAS = (
    '<row r="1"><c r="A1"><v>1</v></c><c r="B1" t="e"><v>#DIV/0!</v></c></row>'
    '<row r="2"><c r="A2"><v>2</v></c><c r="B2" t="b"><v>1</v></c></row>'
    '<row r="3"><c r="A3"><v>3</v></c><c r="B3" t="inlineStr"><is><t>text</t></is></c></row>'
    '<row r="4"><c r="A4"><f>SUM(A1:A3)</f><v>6</v></c>'
    '<c r="B4"><f>1/0</f><v>0.30000000000000004</v></c></row>'
)


def test_cached_values_by_default_formulas_when_asked(tmp_path: Path) -> None:
    path = _raw_workbook(tmp_path / "formulas.xlsx", _FORMULAS)
    cached = _read(path).pages[0].blocks[1]
    assert isinstance(cached, Table)
    assert [[c.text if c else "" for c in row] for row in cached.grid()] == [
        ["1", "#DIV/0!"],
        ["2", "TRUE"],
        ["3", "text"],
        ["6", "0.3"],
    ]
    formulas = _read(path, formulas=True).pages[0].blocks[1]
    assert isinstance(formulas, Table)
    assert [c.text for c in formulas.cells if c.row == 3] == ["=SUM(A1:A3)", "=1/0"]


# Style index -> numFmtId: General, #,##0, #,##0.00, 0.00%, #,##0.0 (custom), mm-dd-yy, m/d/yy h:mm, h:mm,
# [h]:mm:ss, yyyy-mm-dd hh:mm (custom), [h]:mm:ss (custom), @, "USD" 0.00 (custom), 0.00E+00.
_FORMAT_IDS = (0, 3, 4, 10, 164, 14, 22, 20, 46, 165, 166, 49, 167, 11)
_STYLES = (
    '<numFmts count="4"><numFmt numFmtId="164" formatCode="#,##0.0"/>'
    '<numFmt numFmtId="165" formatCode="yyyy\\-mm\\-dd hh:mm"/>'
    '<numFmt numFmtId="166" formatCode="[h]:mm:ss"/>'
    '<numFmt numFmtId="167" formatCode="&quot;USD&quot; 0.00"/></numFmts><cellXfs>'
    + "".join(f'<xf numFmtId="{i}" applyNumberFormat="1"/>' for i in _FORMAT_IDS)
    + "</cellXfs>"
)
# (style index or None, stored value, text in the 1900 date system, text in the 1904 date system)
_NUMBERS = [
    (None, "3", "3", "3"),
    (0, "3.0", "3", "3"),
    (0, "0.30000000000000004", "0.3", "0.3"),
    (None, "1E+20", "1E+20", "1E+20"),
    (1, "1234567.8", "1,234,568", "1,234,568"),
    (2, "-0.001", "0.00", "0.00"),
    (3, "0.1234", "12.34%", "12.34%"),
    (4, "1234.56", "1,234.6", "1,234.6"),
    (5, "45352", "2024-03-01", "2028-03-02"),
    (5, "59", "1900-02-28", "1904-02-29"),
    (5, "61", "1900-03-01", "1904-03-02"),
    (5, "0", "00:00:00", "00:00:00"),
    (6, "45352.75", "2024-03-01 18:00:00", "2028-03-02 18:00:00"),
    (7, "0.5", "12:00:00", "12:00:00"),
    (8, "1.5", "36:00:00", "36:00:00"),
    (9, "45352.5", "2024-03-01 12:00:00", "2028-03-02 12:00:00"),
    (10, "2.25", "54:00:00", "54:00:00"),
    (11, "12", "12", "12"),
    (12, "12.5", "12.50", "12.50"),
    (13, "12345", "12345", "12345"),
    (5, "99999999", "#VALUE!", "#VALUE!"),
    (99, "7.50", "7.5", "7.5"),  # a style the workbook does not define: General
]


@pytest.mark.parametrize("date1904", [False, True])
def test_number_formats_and_dates_in_both_date_systems(tmp_path: Path, date1904: bool) -> None:
    rows = "".join(
        f'<row r="{r}"><c r="A{r}"' + ("" if s is None else f' s="{s}"') + f"><v>{value}</v></c></row>"
        for r, (s, value, _, _) in enumerate(_NUMBERS, start=1)
    )
    path = _raw_workbook(tmp_path / "numbers.xlsx", rows, styles=_STYLES, date1904=date1904)
    table = _read(path).pages[0].blocks[1]
    assert isinstance(table, Table)
    assert [cell.text for cell in table.cells] == [case[3 if date1904 else 2] for case in _NUMBERS]


_STRINGS = (
    f'<sst xmlns="{MAIN}" count="5" uniqueCount="5"><si><t>plain</t></si>'
    '<si><r><rPr><b/></rPr><t>bold</t></r><r><t xml:space="preserve"> and plain</t></r></si>'
    '<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh><phoneticPr fontId="1"/></si>'
    "<si><t>a_x005F_x000D_b</t></si><si><t/></si></sst>"
)


def test_shared_inline_rich_and_formula_strings(tmp_path: Path) -> None:
    cells = (
        '<c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c>'
        '<c r="D1" t="s"><v>3</v></c><c r="E1" t="s"><v>4</v></c>'
        '<c r="F1" t="inlineStr"><is><r><t>in</t></r><r><rPr><i/></rPr><t>line</t></r></is></c>'
        '<c r="G1" t="str"><f>"x"&amp;"y"</f><v>xy</v></c><c r="H1" t="e"><v>#N/A</v></c>'
        '<c r="I1" t="b"><v>0</v></c><c r="J1" t="d"><v>2024-03-01T08:30:00</v></c>'
    )
    path = _raw_workbook(tmp_path / "strings.xlsx", f'<row r="1">{cells}</row>', _STRINGS)
    tables = [block for block in _read(path).pages[0].blocks if isinstance(block, Table)]
    # The empty shared string E1 leaves a gap: two tables.
    assert [[cell.text for cell in table.cells] for table in tables] == [
        ["plain", "bold and plain", "東京", "a_x000D_b"],
        ["inline", "xy", "#N/A", "FALSE", "2024-03-01 08:30:00"],
    ]


def test_shared_formulas_move_with_their_cells(tmp_path: Path) -> None:
    first = "SUM($A$1:A1)+Sheet2!B1+'My Sheet'!C1&amp;\"A1\"+LOG10(A1)+SUM(1:1)"
    rows = (
        f'<row r="1"><c r="A1"><v>1</v></c><c r="B1"><f t="shared" ref="B1:C2" si="0">{first}</f>'
        '<v>1</v></c><c r="C1"><f t="shared" si="0"/><v>2</v></c></row>'
        '<row r="2"><c r="A2"><v>2</v></c><c r="B2"><f t="shared" si="0"/><v>3</v></c>'
        '<c r="C2"><f t="shared" si="7"/><v>4</v></c></row>'
    )
    path = _raw_workbook(tmp_path / "shared.xlsx", rows)
    cached = _read(path).pages[0].blocks[1]
    assert isinstance(cached, Table)
    assert [c.text for c in cached.cells] == ["1", "1", "2", "2", "3", "4"]
    formulas = _read(path, formulas=True).pages[0].blocks[1]
    assert isinstance(formulas, Table)
    assert [c.text for c in formulas.cells][1:3] == [
        "=" + first.replace("&amp;", "&"),
        "=SUM($A$1:B1)+Sheet2!C1+'My Sheet'!D1&\"A1\"+LOG10(B1)+SUM(1:1)",
    ]
    # B2 is the first formula one row down; C2 names a group never written: its cached value.
    assert formulas.cells[4].text == "=SUM($A$1:A2)+Sheet2!B2+'My Sheet'!C2&\"A1\"+LOG10(A2)+SUM(2:2)"
    assert formulas.cells[5].text == "4"


@pytest.mark.parametrize(
    "formula",
    [
        "=A1*2+$A$1+SUM(A$1:A1)",
        '="A1"&B1',
        "=Sheet2!B1+'My Sheet'!C3",
        "=SUM(A:A)+SUM(1:2)+LOG10(A1)",
        "=Table1[Col]+A1",
        "=IF(A1>0,#N/A,B$2)",
        "=_xlfn.CONCAT(XFC1, A1:B$3)",
    ],
)
def test_moved_formulas_match_openpyxl(formula: str) -> None:
    from openpyxl.formula.translate import Translator

    assert "=" + move_formula(formula[1:], 2, 1) == Translator(formula, "C3").translate_formula("D5")


def test_a_reference_moved_off_the_grid_is_ref_error() -> None:
    assert move_formula("A1+$B2+C$1+A:B+2:3", -1, -1) == "#REF!+$B1+B$1+#REF!+1:2"
    assert move_formula("XFD1+A1048576", 0, 1) == "#REF!+B1048576"


def test_streaming_a_big_sheet_keeps_memory_bounded(tmp_path: Path) -> None:
    # 400,000 cells whose text is blank: the result is empty, so what the read holds is the stream's own.
    path = tmp_path / "blank.xlsx"
    row = "".join(f'<c r="{col}{{r}}" t="s"><v>0</v></c>' for col in "ABCDEFGHIJ")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES.format(extra=""))
        package.writestr("_rels/.rels", _ROOT_RELS)
        package.writestr("xl/workbook.xml", _WORKBOOK.format(pr=""))
        package.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.format(extra=""))
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
    path = _raw_workbook(
        tmp_path / "repeat.xlsx", '<row r="1">' + '<c r="A1"><v>1</v></c>' * 16_385 + "</row>"
    )
    assert _code(path) == "CORRUPT_FILE"


@pytest.mark.parametrize(
    "cell",
    [
        '<c r="A1" t="s"><v>5</v></c>',
        '<c r="A1" t="s"><v>-1</v></c>',
        '<c r="A1"><v>1,5</v></c>',
        '<c r="1A"><v>1</v></c>',
    ],
)
def test_damaged_cells_are_corrupt(tmp_path: Path, cell: str) -> None:
    path = _raw_workbook(tmp_path / "damaged.xlsx", f'<row r="1">{cell}</row>', _STRINGS)
    assert _code(path) == "CORRUPT_FILE"


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
    grid = tables[1][1].grid()
    assert [[c.text if c else None for c in row] for row in grid] == [
        [None, "diagonal"],
        [None, "x"],
        ["left", "y"],
    ]


def test_overlapping_merges_are_ignored() -> None:
    values = {0: {0: "a"}, 5: {5: "b"}}
    tables = sheet_tables(values, [(0, 0, 5, 5), (0, 0, 5, 5)], 40)
    assert [t.n_rows for _, t in tables] == [1, 1]


@pytest.mark.parametrize(
    ("value", "number_format", "text"),
    [
        (None, None, ""),
        (3, "General", "3"),
        (3.0, "General", "3"),
        (0.1 + 0.2, "General", "0.3"),
        (1e20, "General", "1E+20"),
        (1234.5, "#,##0.00", "1,234.50"),
        (0.125, "0.0%", "12.5%"),
        (-0.0001, "0.00", "0.00"),
        (True, None, "TRUE"),
        (dt.date(2024, 1, 31), None, "2024-01-31"),
        (dt.time(8, 5), None, "08:05:00"),
        (dt.timedelta(hours=26, minutes=3), None, "26:03:00"),
        ("#N/A", None, "#N/A"),
    ],
)
def test_cell_text(value: object, number_format: str | None, text: str) -> None:
    assert cell_text(value, number_format) == text


# --- damaged and hostile files ----------------------------------------------------------------------


def _code(path: Path, limits: LimitSettings = LIMITS) -> str:
    with pytest.raises(PagemillError) as caught:
        _read(path, limits)
    return caught.value.code


def test_truncated_zip_is_corrupt(workbook: tuple[Path, bytes], tmp_path: Path) -> None:
    data = workbook[0].read_bytes()
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(data[: len(data) * 2 // 3])
    assert _code(broken) == "CORRUPT_FILE"


def test_malformed_sheet_xml_is_corrupt(tmp_path: Path) -> None:
    path = _raw_workbook(tmp_path / "malformed.xlsx", '<row r="1"><c r="A1"><v>1</v></row>')
    assert _code(path) == "CORRUPT_FILE"


def test_billion_laughs_in_shared_strings_is_an_archive_bomb(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f'<sst xmlns="{MAIN}" count="1" uniqueCount="1"><si><t>&lol2;</t></si></sst>'
    )
    path = _raw_workbook(tmp_path / "bomb.xlsx", '<row r="1"><c r="A1" t="s"><v>0</v></c></row>', laughs)
    assert _code(path) == "ARCHIVE_BOMB"


def test_a_lone_far_cell_counts_its_whole_used_range(tmp_path: Path) -> None:
    path = _raw_workbook(tmp_path / "far.xlsx", '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
    assert _code(path) == "TOO_MANY_CELLS"


def _million_rows(path: Path, dimension: bool) -> Path:
    """A 1,000,000-row, 3-column sheet streamed into the zip (never held in memory whole)."""
    row = b"<row><c><v>1</v></c><c><v>2</v></c><c><v>3</v></c></row>" * 10_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES.format(extra=""))
        package.writestr("_rels/.rels", _ROOT_RELS)
        package.writestr("xl/workbook.xml", _WORKBOOK.format(pr=""))
        package.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.format(extra=""))
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
        _read(path)
    assert caught.value.code == "TOO_MANY_CELLS"
    assert caught.value.details["sheet"] == "Raw"
    assert caught.value.details["max_cells"] == LIMITS.max_sheet_cells
    assert time.monotonic() - started < 10


def test_cells_hidden_from_the_quick_count_are_caught_by_the_parse(tmp_path: Path) -> None:
    # Tags the byte count does not see (a line break after the name) still count.
    rows = "".join(
        f'<row r="{r}"><c\nr="A{r}"><v>1</v></c><c\nr="B{r}"><v>2</v></c></row>' for r in range(1, 40)
    )
    path = _raw_workbook(tmp_path / "sneaky.xlsx", rows)
    assert _code(path, LimitSettings(max_sheet_cells=50)) == "TOO_MANY_CELLS"


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

    document = _read(path)
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
    page = _read(tmp_path / "chartsheet.xlsx").pages[1]
    assert (page.title, page.blocks) == (
        "Pie",
        [Heading("Pie", 2), Paragraph("Kinds"), Image(ref=None, alt="Pie chart")],
    )
