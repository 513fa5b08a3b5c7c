"""The PPTX reader: slides as pages of blocks in reading order, with presentations written at test time by
python-pptx (and patched XML where python-pptx has no API: automatic numbers, hidden slides, hostile
parts)."""

from __future__ import annotations

import io
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image as PilImage
from pptx import Presentation
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
from pptx.oxml.ns import qn
from pptx.text.text import _Paragraph
from pptx.util import Inches, Pt

from pagemill.documents.office.blocks import Heading, Image, ListItem, Note, Paragraph, Table
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.pptx import read_pptx
from pagemill.documents.office.pptx_text import format_number
from pagemill.documents.office.render import page_markdown
from pagemill.errors import PagemillError
from pagemill.settings import LimitSettings

LIMITS = LimitSettings()


def _png() -> bytes:
    buffer = io.BytesIO()
    PilImage.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _numbered(paragraph: _Paragraph, text: str, scheme: str, level: int = 0) -> None:
    paragraph.text = text
    paragraph.level = level
    properties = paragraph._p.get_or_add_pPr()
    etree.SubElement(properties, qn("a:buAutoNum"), type=scheme)


def _deck(path: Path) -> bytes:
    """A deck: title slide; bullets, numbers and notes; table, picture, link, group; chart; hidden."""
    prs = Presentation()
    title_slide = prs.slides.add_slide(prs.slide_layouts[0])
    title_slide.shapes.title.text = "Quarterly Review"
    title_slide.placeholders[1].text = "Prepared by the team"

    agenda = prs.slides.add_slide(prs.slide_layouts[1])
    agenda.shapes.title.text = "Agenda"
    frame = agenda.placeholders[1].text_frame
    frame.text = "Results"
    sub = frame.add_paragraph()
    sub.text = "Revenue"
    sub.level = 1
    _numbered(frame.add_paragraph(), "Step one", "arabicPeriod")
    _numbered(frame.add_paragraph(), "Detail a", "alphaLcParenR", level=1)
    _numbered(frame.add_paragraph(), "Detail b", "alphaLcParenR", level=1)
    _numbered(frame.add_paragraph(), "Step two", "arabicPeriod")
    _numbered(frame.add_paragraph(), "Detail again", "romanLcPeriod", level=1)
    agenda.notes_slide.notes_text_frame.text = "Say hello first.\nThen the numbers."

    mixed = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    mixed.shapes.title.text = "Details"
    lower = mixed.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    run = lower.text_frame.paragraphs[0].add_run()
    run.text = "our site"
    run.hyperlink.address = "https://example.com/"
    bold = lower.text_frame.paragraphs[0].add_run()
    bold.text = " and a bold claim"
    bold.font.bold = True
    upper = mixed.shapes.add_textbox(Inches(1), Inches(1.5), Inches(4), Inches(1))
    upper.text_frame.text = "Upper text"
    rows = mixed.shapes.add_table(3, 3, Inches(5), Inches(2), Inches(4), Inches(2)).table
    rows.cell(0, 0).merge(rows.cell(0, 1))
    rows.cell(1, 2).merge(rows.cell(2, 2))
    for r in range(3):
        for c in range(3):
            if not rows.cell(r, c).is_spanned:
                rows.cell(r, c).text = f"r{r}c{c}"
    picture_path = path.with_suffix(".png")
    picture_path.write_bytes(_png())
    pic = mixed.shapes.add_picture(str(picture_path), Inches(1), Inches(3))
    pic._element.nvPicPr.cNvPr.set("descr", "A red square")
    group = mixed.shapes.add_group_shape()
    inner = group.shapes.add_textbox(Inches(1), Inches(6), Inches(2), Inches(0.5))
    inner.text_frame.text = "Grouped words"

    charted = prs.slides.add_slide(prs.slide_layouts[5])
    charted.shapes.title.text = "Sales"
    data = CategoryChartData()  # type: ignore[no-untyped-call]
    data.categories = ["East", "West"]
    data.add_series("2023", (1.5, 2.0))  # type: ignore[no-untyped-call]
    data.add_series("2024", (3, 4.25))  # type: ignore[no-untyped-call]
    chart = charted.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1.5), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Sales by region"

    hidden = prs.slides.add_slide(prs.slide_layouts[5])
    hidden.shapes.title.text = "Backup"
    hidden._element.set("show", "0")
    number = hidden.shapes.add_textbox(Inches(1), Inches(2), Inches(1), Inches(1))
    number.text_frame.text = "Visible text"
    # A slide-number placeholder with text: left out.
    sld_num = etree.fromstring(
        '<p:sp xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:nvSpPr><p:cNvPr id="99" '
        'name="Slide Number"/><p:cNvSpPr/><p:nvPr><p:ph type="sldNum" sz="quarter" idx="12"/></p:nvPr>'
        "</p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/><a:p><a:r><a:t>42</a:t></a:r></a:p></p:txBody></p:sp>"
    )
    hidden.shapes._spTree.append(sld_num)
    for shape in (lower, upper):
        shape.text_frame.paragraphs[0].runs[0].font.size = Pt(18)
    prs.save(str(path))
    return picture_path.read_bytes()


def _read(path: Path, **options: object) -> OfficeDocument:
    return read_pptx(path, ReadOptions(**options), LIMITS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("pptx") / "deck.pptx"
    png = _deck(path)
    return path, png


def test_slides_are_pages_with_titles_and_hidden_flag(deck: tuple[Path, bytes]) -> None:
    document = _read(deck[0])
    assert document.reader == "pptx"
    assert [page.kind for page in document.pages] == ["slide"] * 5
    assert [page.title for page in document.pages] == [
        "Quarterly Review",
        "Agenda",
        "Details",
        "Sales",
        "Backup",
    ]
    assert [page.hidden for page in document.pages] == [False, False, False, False, True]
    assert document.pages[0].blocks == [Heading("Quarterly Review", 1), Paragraph("Prepared by the team")]


def test_bullets_and_automatic_numbers_as_the_slide_shows_them(deck: tuple[Path, bytes]) -> None:
    agenda = _read(deck[0]).pages[1]
    items = [b for b in agenda.blocks if isinstance(b, ListItem)]
    assert [(i.text, i.level, i.ordered, i.marker) for i in items] == [
        ("Results", 0, False, "-"),
        ("Revenue", 1, False, "-"),
        ("Step one", 0, True, "1."),
        ("Detail a", 1, True, "a)"),
        ("Detail b", 1, True, "b)"),
        ("Step two", 0, True, "2."),
        ("Detail again", 1, True, "i."),
    ]
    assert page_markdown(agenda).startswith(
        "# Agenda\n\n- Results\n    - Revenue\n1. Step one\n    a) Detail a\n    b) Detail b\n2. Step two\n"
        "    i. Detail again"
    )


def test_speaker_notes_are_a_note_and_can_be_left_out(deck: tuple[Path, bytes]) -> None:
    agenda = _read(deck[0]).pages[1]
    assert agenda.blocks[-1] == Note("Say hello first.\nThen the numbers.", kind="speaker_notes")
    assert "**Notes:**\n\nSay hello first." in page_markdown(agenda)
    without = _read(deck[0], speaker_notes=False).pages[1]
    assert not any(isinstance(block, Note) for block in without.blocks)


def test_reading_order_tables_pictures_links_and_groups(deck: tuple[Path, bytes]) -> None:
    document = _read(deck[0])
    blocks = document.pages[2].blocks
    kinds = [type(block).__name__ for block in blocks]
    # Title first, then by position: upper text (1.5in), table (2in), picture (3in), link (5in), group (6in).
    assert kinds == ["Heading", "Paragraph", "Table", "Image", "Paragraph", "Paragraph"]
    assert blocks[1] == Paragraph("Upper text")
    table = blocks[2]
    assert isinstance(table, Table)
    assert (table.n_rows, table.n_cols, table.header_rows) == (3, 3, 1)
    assert [[cell.text if cell else None for cell in row] for row in table.grid()] == [
        ["r0c0", "r0c0", "r0c2"],
        ["r1c0", "r1c1", "r1c2"],
        ["r2c0", "r2c1", "r1c2"],
    ]
    spans = {(c.row, c.col): (c.row_span, c.col_span) for c in table.cells}
    assert spans[(0, 0)] == (1, 2) and spans[(1, 2)] == (2, 1) and (0, 1) not in spans
    image = blocks[3]
    assert isinstance(image, Image) and image.ref is not None
    assert image.ref.startswith("ppt/media/") and image.alt == "A red square"
    assert document.image_bytes(image.ref) == deck[1]
    link = blocks[4]
    assert link == Paragraph(
        "our site and a bold claim", md="[our site](https://example.com/) **and a bold claim**"
    )
    assert blocks[5] == Paragraph("Grouped words")


def test_chart_is_title_picture_and_data_table(deck: tuple[Path, bytes]) -> None:
    page = _read(deck[0]).pages[3]
    assert page_markdown(page) == (
        "# Sales\n\nSales by region\n\n<!-- image -->\n\nBar chart\n\n"
        "|  | 2023 | 2024 |\n| - | - | - |\n| East | 1.5 | 3 |\n| West | 2 | 4.25 |"
    )


def test_hidden_slide_skips_slide_number_placeholder(deck: tuple[Path, bytes]) -> None:
    hidden = _read(deck[0]).pages[4]
    assert hidden.blocks == [Heading("Backup", 1), Paragraph("Visible text")]


@pytest.mark.parametrize(
    ("number", "scheme", "expected"),
    [
        (3, "arabicPeriod", "3."),
        (2, "alphaLcParenR", "b)"),
        (28, "alphaUcPeriod", "BB."),
        (4, "romanUcParenBoth", "(IV)"),
        (9, "romanLcPeriod", "ix."),
        (7, "arabicPlain", "7"),
        (5, "unknownScheme", "5."),
    ],
)
def test_number_formats(number: int, scheme: str, expected: str) -> None:
    assert format_number(number, scheme) == expected


# --- damaged and hostile files ----------------------------------------------------------------------


def _rewrite(source: Path, target: Path, replace: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename in replace:
                data = replace[info.filename]
                if data is not None:
                    new.writestr(info.filename, data)
            else:
                new.writestr(info, old.read(info.filename))


def _code(path: Path) -> str:
    with pytest.raises(PagemillError) as caught:
        _read(path)
    return caught.value.code


def test_truncated_zip_is_corrupt(deck: tuple[Path, bytes], tmp_path: Path) -> None:
    data = deck[0].read_bytes()
    broken = tmp_path / "broken.pptx"
    broken.write_bytes(data[: len(data) // 2])
    assert _code(broken) == "CORRUPT_FILE"


def test_missing_presentation_part_is_corrupt(deck: tuple[Path, bytes], tmp_path: Path) -> None:
    broken = tmp_path / "missing.pptx"
    _rewrite(deck[0], broken, {"ppt/presentation.xml": None})
    assert _code(broken) == "CORRUPT_FILE"


def test_malformed_slide_xml_is_corrupt(deck: tuple[Path, bytes], tmp_path: Path) -> None:
    broken = tmp_path / "malformed.pptx"
    _rewrite(deck[0], broken, {"ppt/slides/slide1.xml": b"<p:sld xmlns:p='x'><unclosed></p:sld>"})
    assert _code(broken) == "CORRUPT_FILE"


def test_billion_laughs_is_an_archive_bomb(deck: tuple[Path, bytes], tmp_path: Path) -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">&lol2;</p:sld>'
    )
    bomb = tmp_path / "bomb.pptx"
    _rewrite(deck[0], bomb, {"ppt/slides/slide2.xml": laughs})
    assert _code(bomb) == "ARCHIVE_BOMB"


def test_broken_pictures_do_not_fail_the_slide(deck: tuple[Path, bytes], tmp_path: Path) -> None:
    with zipfile.ZipFile(deck[0]) as package:
        slide = package.read("ppt/slides/slide3.xml").decode()
    dangling = tmp_path / "dangling.pptx"
    # The picture's relationship names nothing, and the chart of slide 4 has lost its part.
    slide = slide.replace('r:embed="rId', 'r:embed="rIdMissing')
    _rewrite(deck[0], dangling, {"ppt/slides/slide3.xml": slide.encode(), "ppt/charts/chart1.xml": None})
    document = _read(dangling)
    images = [b for b in document.pages[2].blocks if isinstance(b, Image)]
    assert images == [Image(ref=None, alt="A red square", name=images[0].name)]
    assert document.pages[3].blocks == [Heading("Sales", 1), Image(ref=None, alt="Chart")]


# --- corpus -----------------------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "char_sim", "word_f1"),
    [
        ("docling__powerpoint_malformed_pictures.pptx", 0.99, 0.99),
        ("docling__powerpoint_with_image.pptx", 0.99, 0.99),
        ("docling__pptx_chart.pptx", 0.82, 0.81),
    ],
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
