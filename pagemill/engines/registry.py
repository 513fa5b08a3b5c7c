"""One engine of each kind per process, made on first use (after the worker fork), never at import."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, get_args

from pagemill.engines.base import OcrEngine
from pagemill.errors import EngineNotConfigured, ValidationFailed
from pagemill.settings import EngineName, OcrSettings, OpenAiEngineSettings, Settings

log = logging.getLogger(__name__)

OCR_ENGINES = ("tesseract", "rapidocr")
"""Engines that run on this machine's CPU."""
MODEL_ENGINES = ("vllm", "remote-openai")
"""Engines that call an OpenAI-compatible model server."""
ENGINE_NAMES: tuple[str, ...] = get_args(EngineName)
assert set(ENGINE_NAMES) == set(OCR_ENGINES + MODEL_ENGINES)

ENGINE_POOLS: dict[str, str] = {"tesseract": "cpu", "rapidocr": "cpu", "vllm": "gpu", "remote-openai": "gpu"}
"""Which worker pool runs each engine. ``cpu``: prefork workers, one page per core. ``gpu``: thread-pool
workers that keep many requests in flight to a model server (the vLLM server on a GPU, or a hosted one).
Page tasks are routed to the queue of that name."""


def engine_pool(name: str) -> str:
    """The worker pool (and queue) that runs engine ``name``."""
    if name not in ENGINE_POOLS:
        raise ValidationFailed(f"Unknown OCR engine '{name}'.", engine=name, allowed=list(ENGINE_NAMES))
    return ENGINE_POOLS[name]


def model_engine_settings(name: str, settings: Settings) -> OpenAiEngineSettings:
    """The server settings of model engine ``name`` (``vllm`` or ``remote-openai``)."""
    return settings.engines.vllm if name == "vllm" else settings.engines.remote_openai


def base_url_setting(name: str) -> tuple[str, str]:
    """The setting that points model engine ``name`` at its server: its dotted name and its variable."""
    group = name.replace("-", "_")
    return f"engines.{group}.base_url", f"PAGEMILL_ENGINES__{group.upper()}__BASE_URL"


def require_configured(names: list[str], settings: Settings) -> None:
    """Raise EngineNotConfigured, naming the setting to set, if a model engine among ``names`` has no
    server: nothing would ever answer its pages."""
    missing = [
        name
        for name in dict.fromkeys(names)
        if name in MODEL_ENGINES and not model_engine_settings(name, settings).base_url
    ]
    if missing:
        variables = [base_url_setting(name)[1] for name in missing]
        raise EngineNotConfigured(
            f"The OCR engine {', '.join(missing)} has no model server configured here: the operator must "
            f"set {', '.join(variables)}. Choose another engine (e.g. tesseract) meanwhile.",
            engines=missing,
            settings=[base_url_setting(name)[0] for name in missing],
            variables=variables,
        )


def get_engine(name: str, settings: Settings) -> OcrEngine:
    """The process's engine ``name`` configured from ``settings`` (CPU OCR or a model server)."""
    if name in OCR_ENGINES:
        return get_ocr_engine(name, settings.ocr)
    if name not in MODEL_ENGINES:
        raise ValidationFailed(f"Unknown OCR engine '{name}'.", engine=name, allowed=list(ENGINE_NAMES))
    engine_settings = model_engine_settings(name, settings)
    key = (name, engine_settings.model_dump_json())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            from pagemill.engines.vllm import OpenAiCompatibleEngine

            engine = _engines[key] = OpenAiCompatibleEngine(engine_settings, name=name)
        return engine


_health: dict[str, tuple[float, bool]] = {}


def engine_healthy(name: str, settings: Settings) -> bool:
    """Whether engine ``name`` can take work now; model servers are asked (``/v1/models``), the answer is
    trusted for ``engines.health_cache_s``. CPU engines are always healthy."""
    if name in OCR_ENGINES:
        return True
    if not model_engine_settings(name, settings).base_url:
        return False
    now = time.monotonic()
    cached = _health.get(name)
    if cached is not None and now - cached[0] < settings.engines.health_cache_s:
        return cached[1]
    engine: Any = get_engine(name, settings)
    try:
        healthy = bool(engine.check().ok)
    except Exception:  # a health probe reports; it never raises
        log.exception("health check of engine %s failed", name)
        healthy = False
    _health[name] = (now, healthy)
    return healthy


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
    """Forget the cached engines and health answers (tests; a process that must reload its models)."""
    with _lock:
        _engines.clear()
        _health.clear()


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
