"""One OCR engine of each kind per process, made on first use (after the worker fork), never at import."""

from __future__ import annotations

import threading

from pagemill.engines.base import OcrEngine
from pagemill.errors import ValidationFailed
from pagemill.settings import OcrSettings

OCR_ENGINES = ("tesseract", "rapidocr")

ENGINE_POOLS: dict[str, str] = {"tesseract": "cpu", "rapidocr": "cpu"}
"""Which worker pool runs each engine: ``cpu``, or ``gpu`` for engines that call a GPU server (the vLLM
engine, when it comes, registers here as ``gpu``). Page tasks are routed to the queue of that name."""


def engine_pool(name: str) -> str:
    """The worker pool (and queue) that runs engine ``name``."""
    if name not in ENGINE_POOLS:
        raise ValidationFailed(f"Unknown OCR engine '{name}'.", engine=name, allowed=list(OCR_ENGINES))
    return ENGINE_POOLS[name]


_lock = threading.Lock()
_engines: dict[tuple[str, str], OcrEngine] = {}


def get_ocr_engine(name: str, settings: OcrSettings) -> OcrEngine:
    """The process's OCR engine ``name`` for ``settings``, wrapped to detect rotation when it is on.

    Raises ValidationFailed for an unknown engine name.
    """
    if name not in OCR_ENGINES:
        raise ValidationFailed(f"Unknown OCR engine '{name}'.", engine=name, allowed=list(OCR_ENGINES))
    key = (name, settings.model_dump_json())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _make(name, settings)
        return engine


def clear_engines() -> None:
    """Forget the cached engines (tests; a process that must reload its models)."""
    with _lock:
        _engines.clear()


def _make(name: str, settings: OcrSettings) -> OcrEngine:
    # Imported here so that importing the registry loads no engine code.
    from pagemill.engines.orientation import OrientedEngine

    engine: OcrEngine
    if name == "tesseract":
        from pagemill.engines.tesseract import TesseractEngine

        engine = TesseractEngine(settings)
    else:
        from pagemill.engines.rapidocr import RapidOcrEngine

        engine = RapidOcrEngine(settings)
    return OrientedEngine(engine, settings) if settings.detect_orientation else engine
