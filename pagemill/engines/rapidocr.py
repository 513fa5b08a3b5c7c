"""CPU OCR with RapidOCR (PaddleOCR's PP-OCRv4 models on ONNX Runtime, ``rapidocr-onnxruntime``).

The models ship inside the wheel; nothing is downloaded. The RapidOCR object loads three ONNX sessions,
so it is made once per process, on first use (after the worker fork), never at import.
"""

from __future__ import annotations

import threading
import time
from importlib import metadata
from typing import Any

import numpy as np
from PIL import Image

from pagemill import deadlines
from pagemill.engines.base import PageResult, TextLine
from pagemill.errors import ProcessingError
from pagemill.settings import OcrSettings

ENGINE_NAME = "rapidocr"
# Two ONNX threads: a worker process per core already gives parallelism, more threads only contend.
_THREADS = 2
# Pages are scaled so their longer side is at most this many pixels: a 300-DPI A4 page (3508 px) then
# takes about 2 s instead of 8-12 s, and body text stays ~25 px high, which the detector reads well.
MAX_SIDE = 2000

_lock = threading.Lock()
_shared: Any = None


def _rapidocr() -> Any:
    """The process's RapidOCR object, made on first use."""
    global _shared
    with _lock:
        if _shared is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise ProcessingError("RapidOCR is not installed; install rapidocr-onnxruntime.") from exc
            _shared = RapidOCR(
                intra_op_num_threads=_THREADS,
                inter_op_num_threads=1,
                max_side_len=MAX_SIDE,
                print_verbose=False,
            )
        return _shared


def _version() -> str:
    try:
        return metadata.version("rapidocr-onnxruntime")
    except metadata.PackageNotFoundError:  # pragma: no cover - depends on the installation
        return "unknown"


class RapidOcrEngine:
    """CPU OCR with RapidOCR (detection, 180-degree line classifier, recognition)."""

    name = ENGINE_NAME

    def __init__(self, settings: OcrSettings) -> None:
        self.settings = settings
        self.model = f"rapidocr-onnxruntime {_version()} PP-OCRv4"

    def recognize(self, image: Image.Image) -> PageResult:
        """Read ``image`` as it is; the registry wraps the engine to turn rotated pages upright first."""
        # In-process inference takes no timeout: not started once the page's time is spent (the hard
        # limit's alarm interrupts it in a prefork worker, pagemill.deadlines).
        deadlines.check()
        started = time.perf_counter()
        scaled, scale = _scaled(image)
        # RapidOCR takes OpenCV's BGR channel order.
        pixels = np.ascontiguousarray(np.asarray(_as_rgb(scaled))[:, :, ::-1])
        try:
            # With page orientation detection on, the per-line 180-degree classifier is off: it would read an
            # upside-down page line by line but in reverse order, and hide that the page needs turning.
            found, _ = _rapidocr()(pixels, use_cls=not self.settings.detect_orientation)
        except ProcessingError:
            raise
        except Exception as exc:
            raise ProcessingError("RapidOCR could not read the page.", reason=type(exc).__name__) from exc
        width, height = scaled.size
        lines: list[TextLine] = []
        for points, text, confidence in found or []:
            text = str(text).strip()
            if not text:
                continue
            xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
            bbox = (
                max(min(xs) / width, 0.0),
                max(min(ys) / height, 0.0),
                min(max(xs) / width, 1.0),
                min(max(ys) / height, 1.0),
            )
            lines.append(TextLine(text=text, bbox=bbox, confidence=round(float(confidence), 4)))
        text = "\n".join(line.text for line in lines)
        return PageResult(
            text=text,
            markdown="\n\n".join(line.text for line in lines),
            engine=ENGINE_NAME,
            lines=lines,
            model=self.model,
            settings={"max_side": MAX_SIDE, "scale": round(scale, 4)},
            timings_ms={"ocr": (time.perf_counter() - started) * 1000.0},
        )


def _scaled(image: Image.Image) -> tuple[Image.Image, float]:
    side = max(image.size)
    if side <= MAX_SIDE:
        return image, 1.0
    scale = MAX_SIDE / side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR), scale


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
