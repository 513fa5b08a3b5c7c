"""Turning rotated page images (90, 180, 270 degrees) upright before OCR.

Most pages are upright, so the page is first read as it is: when that reading is confident and its lines
run horizontally, nothing more is spent. Otherwise Tesseract's orientation detection (OSD, ``--psm 0``) is
asked on a downscaled copy; when it is unsure or fails (it does on sparse pages), the copy is read at each
candidate rotation and the one giving the most confident characters wins. The turned page is kept only if
its reading beats the first one, so a wrong guess never makes a page worse.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from pagemill.engines.base import OcrEngine, PageResult
from pagemill.engines.tesseract import parse_tsv, run_tesseract
from pagemill.errors import ProcessingError, ProcessingTimeout
from pagemill.settings import OcrSettings

ROTATIONS = (0, 90, 180, 270)
# An upright reading: at least this many characters, this char-weighted mean confidence, and at most this
# share of characters in lines taller than wide (text of a page turned 90 degrees is detected as such).
# Measured: upright pages 0.69-0.83 (receipts lowest), pages upside down or on their side 0.23-0.30.
_UPRIGHT_MIN_CHARS = 40
_UPRIGHT_MIN_CONF = 0.60
_UPRIGHT_MAX_TALL = 0.25
# OSD's "orientation confidence" on real rotated pages here is 2.4-3.2; on sparse pages it is near 0.
_OSD_MIN_CONF = 1.5
# The probe must beat the page as it is by this factor to turn it.
_PROBE_MARGIN = 1.3
_PROBE_MAX_SIDE = 1600
_KEEP_TURNED = 0.9
_OSD_ROTATE = re.compile(r"Rotate:\s*(\d+)")
_OSD_CONF = re.compile(r"Orientation confidence:\s*([\d.]+)")


@dataclass(frozen=True, slots=True)
class Orientation:
    """How far (degrees clockwise) to turn a page to read it upright, and how that was decided."""

    rotation: int
    confidence: float
    method: str


def rotate_upright(image: Image.Image, rotation: int) -> Image.Image:
    """``image`` turned ``rotation`` degrees clockwise (0, 90, 180 or 270)."""
    turns = {
        0: None,
        90: Image.Transpose.ROTATE_270,  # PIL names counter-clockwise turns
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }
    if rotation not in turns:
        raise ValueError(f"rotation must be one of {ROTATIONS}, not {rotation}")
    transpose = turns[rotation]
    return image if transpose is None else image.transpose(transpose)


def reading_score(result: PageResult) -> float:
    """Confidence times characters, summed over lines: how much was read, and how surely."""
    return sum((line.confidence or 0.0) * len(line.text.replace(" ", "")) for line in result.lines)


def looks_upright(result: PageResult, size: tuple[int, int]) -> bool:
    """True when a reading is confident and its lines run horizontally, so no rotation is worth trying."""
    width, height = size
    chars = tall = 0
    for line in result.lines:
        n = len(line.text.replace(" ", ""))
        chars += n
        if line.bbox and n >= 3:
            x0, y0, x1, y1 = line.bbox
            tall += n if (y1 - y0) * height > (x1 - x0) * width else 0
    if chars < _UPRIGHT_MIN_CHARS:
        return False
    return reading_score(result) / chars >= _UPRIGHT_MIN_CONF and tall / chars <= _UPRIGHT_MAX_TALL


def detect_orientation(image: Image.Image, *, timeout_s: float) -> Orientation:
    """The rotation that makes ``image`` upright: OSD where it is sure, else the best of four readings."""
    small = _downscale(image)
    osd = _osd(small, timeout_s=timeout_s)
    if osd is not None and osd.confidence >= _OSD_MIN_CONF:
        return osd
    return _probe(small, timeout_s=timeout_s)


def recognize_upright(
    image: Image.Image, read: Callable[[Image.Image], PageResult], *, timeout_s: float
) -> PageResult:
    """Read ``image`` with ``read``, turning it upright first when it is rotated; sets ``rotation``."""
    first = read(image)
    if looks_upright(first, image.size):
        return first
    started = time.perf_counter()
    found = detect_orientation(image, timeout_s=timeout_s)
    spent_ms = (time.perf_counter() - started) * 1000.0
    first.timings_ms["orientation"] = spent_ms
    if found.rotation == 0:
        return first
    turned = read(rotate_upright(image, found.rotation))
    # Tesseract reads some sideways pages as they are (vertical-line detection), so a turned page that reads
    # about as well is still preferred: its boxes and reading order are then those of the upright page.
    if reading_score(turned) < _KEEP_TURNED * reading_score(first):
        return first
    turned.rotation = found.rotation
    turned.settings = {**turned.settings, "orientation": found.method}
    turned.timings_ms["orientation"] = spent_ms
    turned.timings_ms["ocr"] = turned.timings_ms.get("ocr", 0.0) + first.timings_ms.get("ocr", 0.0)
    return turned


class OrientedEngine:
    """Wraps an OCR engine so rotated pages are turned upright before they are read."""

    def __init__(self, inner: OcrEngine, settings: OcrSettings) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = settings

    def recognize(self, image: Image.Image) -> PageResult:
        """Read ``image`` with the wrapped engine, upright; ``rotation`` says how far it was turned."""
        return recognize_upright(image, self.inner.recognize, timeout_s=self.settings.timeout_s)


def _downscale(image: Image.Image) -> Image.Image:
    gray = image.convert("L")
    side = max(gray.size)
    if side <= _PROBE_MAX_SIDE:
        return gray
    scale = _PROBE_MAX_SIDE / side
    return gray.resize(
        (max(1, round(gray.width * scale)), max(1, round(gray.height * scale))), Image.Resampling.BILINEAR
    )


def _osd(image: Image.Image, *, timeout_s: float) -> Orientation | None:
    try:
        out = run_tesseract(image, ["--psm", "0", "-l", "osd"], timeout_s=timeout_s)
    except ProcessingTimeout:
        raise
    except ProcessingError:
        return None  # OSD exits with an error on pages with too little text
    rotate, conf = _OSD_ROTATE.search(out), _OSD_CONF.search(out)
    if rotate is None or conf is None or int(rotate.group(1)) not in ROTATIONS:
        return None
    # Tesseract's "Rotate" is the clockwise turn that makes the page upright (checked on the corpus).
    return Orientation(rotation=int(rotate.group(1)), confidence=float(conf.group(1)), method="osd")


def _probe(image: Image.Image, *, timeout_s: float) -> Orientation:
    scores: dict[int, float] = {}
    for rotation in ROTATIONS:
        turned = rotate_upright(image, rotation)
        tsv = run_tesseract(turned, ["-l", "eng", "--psm", "3", "tsv"], timeout_s=timeout_s)
        lines, _ = parse_tsv(tsv, turned.width, turned.height)
        scores[rotation] = sum((ln.confidence or 0.0) * len(ln.text.replace(" ", "")) for ln in lines)
    best = max(scores, key=lambda r: scores[r])
    if best != 0 and scores[best] > _PROBE_MARGIN * scores[0]:
        return Orientation(rotation=best, confidence=scores[best] / max(scores[0], 1.0), method="probe")
    return Orientation(rotation=0, confidence=0.0, method="probe")
