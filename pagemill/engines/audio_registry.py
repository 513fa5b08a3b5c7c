"""Speech engines: one of each per process, made on first use; their pools, chains and health.

The names are those of ``audio.default_engine`` and a job's ``engine``: ``faster-whisper`` runs on the CPU
pool, ``whisper-vllm`` and ``remote-openai`` call a server from the GPU pool (threads keeping many pieces in
flight, as for OCR pages). ``remote-openai`` also names the OCR engine of a hosted vision model: a job's
kind decides which one is meant, and their health answers are cached apart.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import get_args

from pagemill.engines.audio_base import AudioEngine
from pagemill.errors import EngineNotConfigured, ValidationFailed
from pagemill.settings import AudioEngineName, Settings, WhisperServerSettings

log = logging.getLogger(__name__)

AUDIO_ENGINE_NAMES: tuple[str, ...] = get_args(AudioEngineName)
AUDIO_ENGINE_POOLS: dict[str, str] = {"faster-whisper": "cpu", "whisper-vllm": "gpu", "remote-openai": "gpu"}
SERVER_ENGINES = ("whisper-vllm", "remote-openai")
assert set(AUDIO_ENGINE_POOLS) == set(AUDIO_ENGINE_NAMES)

_lock = threading.Lock()
_engines: dict[tuple[str, str], AudioEngine] = {}
_health: dict[str, tuple[float, bool]] = {}


def check_audio_engine(name: str) -> str:
    """``name`` if it names a speech engine; ValidationFailed otherwise."""
    if name not in AUDIO_ENGINE_POOLS:
        raise ValidationFailed(
            f"engine must be one of {', '.join(AUDIO_ENGINE_NAMES)} for a recording.",
            field="engine",
            value=name,
        )
    return name


def audio_engine_pool(name: str) -> str:
    """The worker pool (and queue) that runs speech engine ``name``."""
    return AUDIO_ENGINE_POOLS[check_audio_engine(name)]


def server_settings(name: str, settings: Settings) -> WhisperServerSettings:
    """The server settings of ``whisper-vllm`` or ``remote-openai``."""
    return settings.audio.whisper_vllm if name == "whisper-vllm" else settings.audio.remote_openai


def require_audio_configured(names: list[str], settings: Settings) -> None:
    """EngineNotConfigured, naming the setting, when a server engine among ``names`` has no server."""
    from pagemill.engines.whisper_openai import base_url_setting

    missing = [
        n for n in dict.fromkeys(names) if n in SERVER_ENGINES and not server_settings(n, settings).base_url
    ]
    if missing:
        variables = [base_url_setting(name)[1] for name in missing]
        raise EngineNotConfigured(
            f"The speech engine {', '.join(missing)} has no server configured here: the operator must set "
            f"{', '.join(variables)}. Choose faster-whisper meanwhile.",
            engines=missing,
            settings=[base_url_setting(name)[0] for name in missing],
            variables=variables,
        )


def get_audio_engine(name: str, settings: Settings) -> AudioEngine:
    """The process's speech engine ``name`` configured from ``settings``."""
    check_audio_engine(name)
    config = settings.audio if name == "faster-whisper" else server_settings(name, settings)
    key = (name, config.model_dump_json())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _make(name, settings)
        return engine


def _make(name: str, settings: Settings) -> AudioEngine:
    # Imported here: importing the registry loads neither faster-whisper nor httpx clients.
    if name == "faster-whisper":
        from pagemill.engines.faster_whisper_engine import FasterWhisperEngine

        return FasterWhisperEngine(settings.audio)
    from pagemill.engines.whisper_openai import OpenAiTranscriptionEngine

    return OpenAiTranscriptionEngine(server_settings(name, settings), name)


def audio_engine_healthy(name: str, settings: Settings) -> bool:
    """Whether speech engine ``name`` can take pieces now: servers are asked (``/v1/models``, trusted for
    ``engines.health_cache_s``); faster-whisper when its model is configured."""
    if name in SERVER_ENGINES and not server_settings(name, settings).base_url:
        return False
    now = time.monotonic()
    cached = _health.get(name)
    if cached is not None and now - cached[0] < settings.engines.health_cache_s:
        return cached[1]
    engine = get_audio_engine(name, settings)
    try:
        healthy = bool(engine.check().ok)  # type: ignore[attr-defined]
    except Exception:  # a health probe reports; it never raises
        log.exception("health check of speech engine %s failed", name)
        healthy = False
    _health[name] = (now, healthy)
    return healthy


def clear_audio_engines() -> None:
    """Forget the cached engines and health answers (tests)."""
    with _lock:
        _engines.clear()
        _health.clear()
