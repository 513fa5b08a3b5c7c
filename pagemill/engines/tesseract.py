"""Tesseract OCR through its command-line program (Debian package ``tesseract-ocr``).

The CLI is used rather than a binding: a crash or a runaway page kills only the child process, and the
timeout is enforced by killing it. ``OMP_THREAD_LIMIT=1`` keeps one page on one core; the workers give
parallelism (Tesseract's own threads oversubscribe the cores badly).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import subprocess
import time
from dataclasses import dataclass

from PIL import Image, ImageChops

from pagemill import deadlines
from pagemill.engines.base import PageResult, TextLine
from pagemill.errors import ProcessingError, ProcessingTimeout
from pagemill.settings import OcrSettings

ENGINE_NAME = "tesseract"
_INSTALL_HINT = "Tesseract is not installed; install the tesseract-ocr package (with its language data)."


def run_tesseract(image: Image.Image, args: list[str], *, timeout_s: float) -> str:
    """Run ``tesseract stdin stdout *args`` on ``image`` and return what it prints.

    Raises ProcessingTimeout when it takes longer than ``timeout_s``, or than what is left of the page's
    time (pagemill.deadlines; the process is killed), and ProcessingError when the program is missing or
    fails.
    """
    allowed = deadlines.budget(timeout_s)
    # PNM is written without compression: encoding PNG would cost more than a small page's OCR.
    buffer = io.BytesIO()
    as_tesseract_input(image).save(buffer, format="PPM")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", *args],
            input=buffer.getvalue(),
            capture_output=True,
            env=env,
            timeout=allowed,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ProcessingError(_INSTALL_HINT) from exc
    except subprocess.TimeoutExpired as exc:
        if deadlines.spent():
            raise deadlines.timed_out() from exc
        raise ProcessingTimeout("OCR of a page took longer than allowed.", timeout_s=timeout_s) from exc
    if done.returncode != 0:
        raise ProcessingError("Tesseract could not read the page.", returncode=done.returncode)
    return done.stdout.decode("utf-8", errors="replace")


def as_tesseract_input(image: Image.Image) -> Image.Image:
    """``image`` as Tesseract should get it: colour pages in colour, grey pages (also RGB renders whose
    pixels are all grey) as L, transparency flattened onto white.

    Measured on the corpus (docs/ocr-quality.md): Tesseract reads colour scans better from the colour image
    than from a grayscale conversion made beforehand (it thresholds each channel itself; receipts char_sim
    0.773 -> 0.822), while a grey page gives the same text either way and in colour only costs CPU (1.9x on
    a 300-DPI render). So the conversion follows the pixels, not the image mode.
    """
    if image.mode in ("1", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas are paper: flatten onto white rather than the black PIL would give.
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, "white")
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    # With R = G = B everywhere, any channel is the grey image (and equals what convert("L") would give).
    return rgb.getchannel("R") if is_grey(rgb) else rgb


def is_grey(image: Image.Image) -> bool:
    """True when every pixel of an RGB image has R = G = B (about 40 ms for a 300-DPI page)."""
    red, green, blue = image.split()
    return ImageChops.difference(red, green).getbbox() is None and (
        ImageChops.difference(green, blue).getbbox() is None
    )


@functools.cache
def tesseract_version() -> str:
    """The installed Tesseract version, e.g. ``5.3.0``; ProcessingError when it is missing."""
    try:
        done = subprocess.run(["tesseract", "--version"], capture_output=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise ProcessingError(_INSTALL_HINT) from exc
    first = (done.stdout or done.stderr).decode(errors="replace").splitlines()
    return first[0].split()[-1] if first and first[0].startswith("tesseract") else "unknown"


@dataclass(frozen=True, slots=True)
class _Word:
    block: tuple[int, int]
    line: tuple[int, int, int]
    box: tuple[int, int, int, int]
    conf: float
    text: str


def parse_tsv(tsv: str, width: int, height: int) -> tuple[list[TextLine], list[list[str]]]:
    """Lines (boxes normalised to the image, mean word confidence 0..1) and the paragraphs they form."""
    words: list[_Word] = []
    rows = csv.reader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in rows:
        if len(row) < 12 or row[0] != "5" or not row[11].strip():
            continue
        block, par, line = int(row[2]), int(row[3]), int(row[4])
        left, top, w, h = (int(v) for v in row[6:10])
        words.append(
            _Word(
                (block, par),
                (block, par, line),
                (left, top, left + w, top + h),
                max(float(row[10]), 0.0) / 100.0,
                row[11].strip(),
            )
        )
    lines: list[TextLine] = []
    paragraphs: list[list[str]] = []
    current: list[_Word] = []
    prev_block: tuple[int, int] | None = None
    for word in [*words, None]:
        if current and (word is None or word.line != current[0].line):
            text = " ".join(w.text for w in current)
            box = (
                min(w.box[0] for w in current) / width,
                min(w.box[1] for w in current) / height,
                max(w.box[2] for w in current) / width,
                max(w.box[3] for w in current) / height,
            )
            conf = sum(w.conf * len(w.text) for w in current) / sum(len(w.text) for w in current)
            lines.append(TextLine(text=text, bbox=box, confidence=round(conf, 4)))
            if prev_block != current[0].block:
                paragraphs.append([])
            paragraphs[-1].append(text)
            prev_block = current[0].block
            current = []
        if word is not None:
            current.append(word)
    return lines, paragraphs


class TesseractEngine:
    """CPU OCR with Tesseract (``--psm 3``, the LSTM models of ``settings.languages``)."""

    name = ENGINE_NAME

    def __init__(self, settings: OcrSettings) -> None:
        self.settings = settings

    @property
    def model(self) -> str:
        """What produced the text, e.g. ``tesseract 5.3.0 eng``."""
        return f"tesseract {tesseract_version()} {self.settings.languages}"

    def recognize(self, image: Image.Image) -> PageResult:
        """Read ``image`` as it is; the registry wraps the engine to turn rotated pages upright first."""
        started = time.perf_counter()
        dpi = image.info.get("dpi")
        dpi_value = int(dpi[0]) if isinstance(dpi, tuple) and dpi and dpi[0] else self.settings.dpi
        args = ["-l", self.settings.languages, "--psm", "3", "--dpi", str(max(dpi_value, 70)), "tsv"]
        tsv = run_tesseract(image, args, timeout_s=self.settings.timeout_s)
        lines, paragraphs = parse_tsv(tsv, image.width, image.height)
        return PageResult(
            text="\n\n".join("\n".join(p) for p in paragraphs),
            markdown="\n\n".join(" ".join(p) for p in paragraphs),
            engine=ENGINE_NAME,
            lines=lines,
            model=self.model,
            settings={"languages": self.settings.languages, "psm": 3, "dpi": dpi_value},
            timings_ms={"ocr": (time.perf_counter() - started) * 1000.0},
        )
