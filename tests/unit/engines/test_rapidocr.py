"""RapidOCR: text from a rendered page, one model object per process, rotation through the wrapper."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from pagemill.engines import rapidocr
from pagemill.engines.orientation import OrientedEngine
from pagemill.engines.rapidocr import RapidOcrEngine
from pagemill.settings import OcrSettings

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = ["Invoice number 4711", "Total amount due 99.50", "Thank you for your order"]


def render_page(size: tuple[int, int] = (1000, 460)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 46)
    for i, line in enumerate(LINES):
        draw.text((50, 50 + i * 130), line, fill="black", font=font)
    return image


def test_reads_lines_with_boxes_and_confidences() -> None:
    result = RapidOcrEngine(OcrSettings(detect_orientation=False)).recognize(render_page())
    assert result.engine == "rapidocr" and result.model and "rapidocr-onnxruntime 1.4.4" in result.model
    assert [line.text.replace(" ", "") for line in result.lines] == [ln.replace(" ", "") for ln in LINES]
    for line in result.lines:
        assert line.bbox is not None and all(0.0 <= v <= 1.0 for v in line.bbox)
        assert line.confidence is not None and line.confidence > 0.8


def test_large_pages_are_scaled_down_and_boxes_stay_normalised() -> None:
    big = render_page().resize((4000, 1840))
    result = RapidOcrEngine(OcrSettings(detect_orientation=False)).recognize(big)
    assert result.settings["scale"] == 0.5
    assert "4711" in result.text
    first = result.lines[0].bbox or (0, 0, 0, 0)
    assert 0.02 < first[0] < 0.1 and 0.05 < first[1] < 0.2


def test_model_is_made_once_per_process() -> None:
    assert rapidocr._rapidocr() is rapidocr._rapidocr()


def test_upside_down_page_is_turned() -> None:
    settings = OcrSettings()
    result = OrientedEngine(RapidOcrEngine(settings), settings).recognize(render_page().rotate(180))
    assert result.rotation == 180
    assert result.text.index("4711") < result.text.index("Thank")


def test_blank_page_reads_nothing() -> None:
    result = RapidOcrEngine(OcrSettings(detect_orientation=False)).recognize(Image.new("L", (600, 400), 255))
    assert result.text == "" and result.lines == []
