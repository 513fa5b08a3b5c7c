"""Tesseract through its CLI: text, boxes, confidences and the errors it maps."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image, ImageDraw, ImageFont

from pagemill.engines.tesseract import TesseractEngine, as_tesseract_input, parse_tsv, run_tesseract
from pagemill.errors import ProcessingError, ProcessingTimeout
from pagemill.settings import OcrSettings

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = ["The quick brown fox jumps", "over the lazy dog near", "Pagemill station 2024"]


def render_page(lines: list[str] = LINES, size: tuple[int, int] = (1100, 500)) -> Image.Image:
    """Black text on white, large enough for any OCR engine."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 48)
    for i, line in enumerate(lines):
        draw.text((60, 60 + i * 110), line, fill="black", font=font)
    return image


def test_reads_text_lines_boxes_and_confidences() -> None:
    result = TesseractEngine(OcrSettings(detect_orientation=False)).recognize(render_page())
    assert result.engine == "tesseract"
    assert result.model and result.model.startswith("tesseract 5") and result.model.endswith("eng")
    assert [line.text for line in result.lines] == LINES
    for line in result.lines:
        assert line.bbox is not None and all(0.0 <= v <= 1.0 for v in line.bbox)
        assert line.confidence is not None and 0.8 <= line.confidence <= 1.0
    first = result.lines[0].bbox or (0, 0, 0, 0)
    assert first[0] == pytest.approx(60 / 1100, abs=0.02) and first[1] == pytest.approx(70 / 500, abs=0.04)
    assert "quick brown fox" in result.text and result.rotation == 0


def test_transparent_and_palette_images_are_read() -> None:
    rgba = render_page().convert("RGBA")
    rgba.putalpha(255)
    result = TesseractEngine(OcrSettings(detect_orientation=False)).recognize(rgba.convert("LA"))
    assert "lazy dog" in result.text


def test_parse_tsv_groups_words_into_lines_and_paragraphs() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "5\t1\t1\t1\t1\t1\t10\t10\t40\t20\t90\tHello",
        "5\t1\t1\t1\t1\t2\t60\t12\t40\t20\t70\tworld",
        "5\t1\t2\t1\t1\t1\t10\t60\t40\t20\t-1\t ",
        "5\t1\t2\t1\t1\t2\t10\t60\t30\t20\t50\tBye",
    ]
    lines, paragraphs = parse_tsv("\n".join([header, *rows]), 200, 100)
    assert [ln.text for ln in lines] == ["Hello world", "Bye"]
    assert lines[0].bbox == pytest.approx((0.05, 0.1, 0.5, 0.32))
    assert lines[0].confidence == pytest.approx(0.8)
    assert paragraphs == [["Hello world"], ["Bye"]]


def test_missing_binary_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProcessingError, match="tesseract-ocr"):
        run_tesseract(render_page(), ["tsv"], timeout_s=10)


def test_timeout_raises_processing_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_slow(*args: Any, **kwargs: Any) -> None:
        raise subprocess.TimeoutExpired(cmd="tesseract", timeout=kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", too_slow)
    with pytest.raises(ProcessingTimeout):
        TesseractEngine(OcrSettings(timeout_s=1, detect_orientation=False)).recognize(render_page())


def test_failure_raises_processing_error() -> None:
    with pytest.raises(ProcessingError):
        run_tesseract(render_page(), ["-l", "no_such_language", "tsv"], timeout_s=30)


def test_environment_limits_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        seen.update(cmd=cmd, env=kwargs["env"], input=kwargs["input"])
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    monkeypatch.setattr(subprocess, "run", fake_run)
    run_tesseract(render_page(), ["tsv"], timeout_s=5)
    assert seen["env"]["OMP_THREAD_LIMIT"] == "1"
    assert seen["cmd"][:3] == ["tesseract", "stdin", "stdout"]
    assert seen["input"].startswith(b"P5")  # grayscale PGM on stdin


def test_colour_text_a_grey_conversion_would_erase_is_read() -> None:
    # Blue text on a grey of the same brightness: a grayscale copy is blank (luma 29 everywhere), while
    # Tesseract, thresholding the colour image itself, still sees the text.
    page = Image.new("RGB", (1100, 300), (29, 29, 29))
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 48)
    draw.text((60, 60), LINES[0], fill=(0, 0, 255), font=font)
    draw.text((60, 170), LINES[1], fill=(0, 0, 255), font=font)
    low, high = cast(tuple[int, int], page.convert("L").getextrema())
    assert high - low <= 1
    result = TesseractEngine(OcrSettings(detect_orientation=False)).recognize(page)
    assert "quick brown fox" in result.text and "lazy dog" in result.text


def test_grey_pages_go_to_tesseract_as_grey_and_colour_pages_in_colour() -> None:
    grey_rgb = render_page()  # black on white, drawn in RGB as PDF renders are
    sent = as_tesseract_input(grey_rgb)
    assert sent.mode == "L" and sent.tobytes() == grey_rgb.convert("L").tobytes()
    colour = render_page()
    ImageDraw.Draw(colour).rectangle((0, 0, 40, 40), fill=(200, 30, 30))
    assert as_tesseract_input(colour) is colour
    transparent = Image.new("RGBA", (50, 50), (255, 0, 0, 0))  # fully transparent red: white paper
    flattened = as_tesseract_input(transparent)
    assert flattened.mode == "L" and flattened.getextrema() == (255, 255)
    palette = colour.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert as_tesseract_input(palette).mode == "RGB"
    for mode in ("1", "L"):
        image = grey_rgb.convert(mode)
        assert as_tesseract_input(image) is image
