"""The PDF text layer: text, boxes on rotated pages, page furniture and garbage detection."""

from __future__ import annotations

import ctypes
import io

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from pagemill.engines.base import TextLine
from pagemill.engines.text_layer import is_page_furniture, is_usable_text, lines_to_markdown, read_text_layer

WIDTH, HEIGHT = 612.0, 792.0


def make_pdf(
    lines: list[tuple[str, float, float]], *, rotation: int = 0, size: float = 12.0
) -> pdfium.PdfDocument:
    """A one-page PDF with ``(text, x, y)`` lines in Helvetica (PDF points, origin bottom-left)."""
    doc = pdfium.PdfDocument.new()
    page = doc.new_page(WIDTH, HEIGHT)
    font = pdfium_c.FPDFText_LoadStandardFont(doc.raw, b"Helvetica")
    for text, x, y in lines:
        obj = pdfium_c.FPDFPageObj_CreateTextObj(doc.raw, font, size)
        wide = ctypes.create_string_buffer((text + "\0").encode("utf-16-le"))
        pdfium_c.FPDFText_SetText(obj, ctypes.cast(wide, ctypes.POINTER(pdfium_c.FPDF_WCHAR)))
        pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
        pdfium_c.FPDFPage_InsertObject(page.raw, obj)
    pdfium_c.FPDFPage_GenerateContent(page.raw)
    page.set_rotation(rotation)
    buffer = io.BytesIO()
    doc.save(buffer)
    return pdfium.PdfDocument(buffer.getvalue())


BODY: list[tuple[str, float, float]] = [
    ("Pagemill reads the text layer of born-digital pages.", 72, 700),
    ("A second line of the same paragraph follows here.", 72, 686),
    ("A new paragraph starts after a wide gap.", 72, 600),
]


def test_reads_lines_text_and_markdown() -> None:
    result = read_text_layer(make_pdf(BODY)[0], min_chars=16)
    assert result is not None
    assert result.engine == "text_layer"
    assert [line.text for line in result.lines] == [text for text, _, _ in BODY]
    assert result.text == "\n".join(text for text, _, _ in BODY)
    assert result.markdown == (
        "Pagemill reads the text layer of born-digital pages. "
        "A second line of the same paragraph follows here."
        "\n\nA new paragraph starts after a wide gap."
    )


def test_boxes_are_normalised_from_the_top_left() -> None:
    result = read_text_layer(make_pdf(BODY)[0], min_chars=16)
    assert result is not None
    x0, y0, x1, y1 = result.lines[0].bbox or (0, 0, 0, 0)
    assert x0 == pytest.approx(72 / WIDTH, abs=0.01)
    assert y1 == pytest.approx((HEIGHT - 700) / HEIGHT, abs=0.01)  # the baseline is the box's bottom
    assert 0.3 < x1 < 0.9 and y0 < y1


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_boxes_follow_the_page_rotation(rotation: int) -> None:
    upright = read_text_layer(make_pdf(BODY)[0], min_chars=16)
    turned = read_text_layer(make_pdf(BODY, rotation=rotation)[0], min_chars=16)
    assert upright is not None and turned is not None
    turned_boxes = {line.text: line.bbox for line in turned.lines}
    assert set(turned_boxes) == {line.text for line in upright.lines}
    for line in upright.lines:
        u0, v0, u1, v1 = line.bbox or (0, 0, 0, 0)
        expected = {
            90: (1 - v1, u0, 1 - v0, u1),
            180: (1 - u1, 1 - v1, 1 - u0, 1 - v0),
            270: (v0, 1 - u1, v1, 1 - u0),
        }[rotation]
        assert turned_boxes[line.text] == pytest.approx(expected, abs=1e-6)


def test_page_numbers_and_margin_lines_are_dropped() -> None:
    lines = [*BODY, ("Journal of Tests | Volume 1", 72, 780), ("7", 300, 20)]
    result = read_text_layer(make_pdf(lines)[0], min_chars=16)
    assert result is not None
    assert "Journal of Tests" not in result.text
    assert "\n7" not in result.text and not result.text.endswith("7")
    assert "Pagemill reads" in result.text


def test_missing_or_short_layer_returns_none() -> None:
    assert read_text_layer(make_pdf([])[0], min_chars=16) is None
    assert read_text_layer(make_pdf([("Hi", 72, 700)])[0], min_chars=16) is None


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        ("A normal sentence with enough characters.", True),
        ("", False),
        ("short", False),
        ("\ufffd" * 40, False),
        ("\ue001\ue002\ue003" * 20 + "abc", False),
        ("\x01\x03\x04" * 20, False),
        ("A page with a few broken glyphs \ufffd\ufffd in it.", True),
    ],
)
def test_is_usable_text(text: str, usable: bool) -> None:
    assert is_usable_text(text, 16) is usable


def test_markdown_bullets_and_escapes() -> None:
    lines = [
        TextLine("# not a heading", (0.1, 0.10, 0.5, 0.12)),
        TextLine("\u2022 first item", (0.1, 0.20, 0.5, 0.22)),
        TextLine("\u2022 second item", (0.1, 0.225, 0.5, 0.245)),
    ]
    assert lines_to_markdown(lines) == "\\# not a heading\n\n- first item\n\n- second item"


def test_page_furniture_rules() -> None:
    assert is_page_furniture(TextLine("12", (0.5, 0.95, 0.52, 0.96)))
    assert is_page_furniture(TextLine("Downloaded from example.org", (0.01, 0.2, 0.03, 0.7)))
    assert not is_page_furniture(TextLine("Body text in the middle", (0.1, 0.5, 0.9, 0.52)))
    assert not is_page_furniture(TextLine("no box", None))
