"""The XLSX reader's cell values: cached values and formulas, number formats and dates in both date systems,
shared, inline and rich strings, shared formulas moved with their cells, and damaged cell values; mostly in
workbooks written part by part (:func:`raw_workbook`, which :mod:`.test_xlsx` uses too), as openpyxl cannot
write cached formula values or error values."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest

from pagemill.documents.office.blocks import Table
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.xlsx import read_xlsx
from pagemill.documents.office.xlsx_formulas import move_formula
from pagemill.documents.office.xlsx_values import cell_text
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def read(path: Path, limits: LimitSettings = LIMITS, **options: object) -> OfficeDocument:
    """The workbook at ``path`` read with ``options``."""
    return read_xlsx(path, ReadOptions(**options), limits)  # type: ignore[arg-type]


def error_code(path: Path, limits: LimitSettings = LIMITS) -> str:
    """The error code reading ``path`` raises."""
    with pytest.raises(PagemillError) as caught:
        read(path, limits)
    return caught.value.code


# --- raw packages -----------------------------------------------------------------------------------

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
    'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.worksheet+xml"/>{extra}</Types>'
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    f'2006/relationships"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">{{pr}}<sheets>'
    '<sheet name="Raw" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
    f'2006/relationships"><Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    "{extra}</Relationships>"
)


def raw_workbook(
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
        package.writestr("[Content_Types].xml", CONTENT_TYPES.format(extra=extra_type))
        package.writestr("_rels/.rels", ROOT_RELS)
        package.writestr("xl/workbook.xml", WORKBOOK.format(pr='<workbookPr date1904="1"/>' * date1904))
        package.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.format(extra=extra_rel))
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
    path = raw_workbook(tmp_path / "formulas.xlsx", _FORMULAS)
    cached = read(path).pages[0].blocks[1]
    assert isinstance(cached, Table)
    assert [[c.text if c else "" for c in row] for row in cached.grid()] == [
        ["1", "#DIV/0!"],
        ["2", "TRUE"],
        ["3", "text"],
        ["6", "0.3"],
    ]
    formulas = read(path, formulas=True).pages[0].blocks[1]
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
    path = raw_workbook(tmp_path / "numbers.xlsx", rows, styles=_STYLES, date1904=date1904)
    table = read(path).pages[0].blocks[1]
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
    path = raw_workbook(tmp_path / "strings.xlsx", f'<row r="1">{cells}</row>', _STRINGS)
    tables = [block for block in read(path).pages[0].blocks if isinstance(block, Table)]
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
    path = raw_workbook(tmp_path / "shared.xlsx", rows)
    cached = read(path).pages[0].blocks[1]
    assert isinstance(cached, Table)
    assert [c.text for c in cached.cells] == ["1", "1", "2", "2", "3", "4"]
    formulas = read(path, formulas=True).pages[0].blocks[1]
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
    path = raw_workbook(tmp_path / "damaged.xlsx", f'<row r="1">{cell}</row>', _STRINGS)
    assert error_code(path) == "CORRUPT_FILE"


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
