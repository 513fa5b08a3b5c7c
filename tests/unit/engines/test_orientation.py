"""Rotated pages are turned upright and read; upright pages pay nothing extra."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from pagemill.engines import orientation
from pagemill.engines.orientation import OrientedEngine, detect_orientation, rotate_upright
from pagemill.engines.tesseract import TesseractEngine
from pagemill.settings import OcrSettings

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = [
    "Orientation detection turns pages",
    "so that every line reads from left",
    "to right and top to bottom again.",
    "Scanners often feed paper sideways.",
]


def render_page() -> Image.Image:
    image = Image.new("L", (1300, 560), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 44)
    for i, line in enumerate(LINES):
        draw.text((50, 50 + i * 115), line, fill=0, font=font)
    return image


def turned_counter_clockwise(image: Image.Image, degrees: int) -> Image.Image:
    # A page turned N degrees counter-clockwise needs N degrees clockwise to read.
    return image.rotate(degrees, expand=True, fillcolor=255)


@pytest.fixture(scope="module")
def engine() -> OrientedEngine:
    settings = OcrSettings()
    return OrientedEngine(TesseractEngine(settings), settings)


def test_rotate_upright_turns_clockwise() -> None:
    image = Image.new("L", (4, 2), 0)
    image.putpixel((0, 0), 255)  # top-left
    turned = rotate_upright(image, 90)
    assert turned.size == (2, 4) and turned.getpixel((1, 0)) == 255  # top-left goes top-right
    assert rotate_upright(image, 0) is image
    with pytest.raises(ValueError):
        rotate_upright(image, 45)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_page_is_read_and_rotation_reported(engine: OrientedEngine, degrees: int) -> None:
    result = engine.recognize(turned_counter_clockwise(render_page(), degrees))
    assert result.rotation == degrees
    assert "Orientation detection turns pages" in result.text
    assert "Scanners often feed paper sideways." in result.text
    assert result.text.index("Orientation") < result.text.index("Scanners")


def test_upright_page_skips_detection(engine: OrientedEngine) -> None:
    result = engine.recognize(render_page())
    assert result.rotation == 0
    assert "orientation" not in result.timings_ms
    assert "every line reads" in result.text


@pytest.mark.parametrize("degrees", [90, 180])
def test_probe_finds_rotation_when_osd_fails(monkeypatch: pytest.MonkeyPatch, degrees: int) -> None:
    monkeypatch.setattr(orientation, "_osd", lambda image, timeout_s: None)
    found = detect_orientation(turned_counter_clockwise(render_page(), degrees), timeout_s=60)
    assert found.rotation == degrees and found.method == "probe"


def test_blank_page_stays_unrotated(engine: OrientedEngine) -> None:
    result = engine.recognize(Image.new("L", (800, 600), 255))
    assert result.rotation == 0 and result.text == ""
