"""Refusing at submission a job whose OCR would need a model server that is not configured."""

from __future__ import annotations

import pytest

from pagemill.errors import EngineNotConfigured
from pagemill.jobs import reading
from pagemill.jobs.options import JobOptions, OcrMode
from pagemill.settings import EngineSettings, OpenAiEngineSettings, Settings


def test_a_model_engine_without_a_server_is_refused_naming_its_setting() -> None:
    with pytest.raises(EngineNotConfigured) as raised:
        reading.require_engines_configured(JobOptions(engine="vllm"), Settings())
    error = raised.value
    assert error.code == "ENGINE_NOT_CONFIGURED" and error.http_status == 422
    assert "PAGEMILL_ENGINES__VLLM__BASE_URL" in error.message
    assert error.details == {
        "engines": ["vllm"],
        "settings": ["engines.vllm.base_url"],
        "variables": ["PAGEMILL_ENGINES__VLLM__BASE_URL"],
    }
    with pytest.raises(EngineNotConfigured, match="PAGEMILL_ENGINES__REMOTE_OPENAI__BASE_URL"):
        reading.require_engines_configured(JobOptions(engine="remote-openai"), Settings())


def test_the_default_engine_and_the_fallbacks_are_checked_too() -> None:
    default_vllm = Settings(engines=EngineSettings(default="vllm"))
    with pytest.raises(EngineNotConfigured, match="VLLM"):
        reading.require_engines_configured(JobOptions(), default_vllm)
    fallback = Settings(engines=EngineSettings(default="tesseract", fallback=["remote-openai"]))
    with pytest.raises(EngineNotConfigured) as raised:
        reading.require_engines_configured(JobOptions(), fallback)
    assert raised.value.details["engines"] == ["remote-openai"]


def test_configured_cpu_and_unused_engines_pass() -> None:
    served = Settings(engines=EngineSettings(vllm=OpenAiEngineSettings(base_url="http://gpu:8000")))
    reading.require_engines_configured(JobOptions(engine="vllm"), served)
    reading.require_engines_configured(JobOptions(engine="tesseract"), Settings())
    reading.require_engines_configured(JobOptions(), Settings())
    # A job that never OCRs never reaches its engine.
    reading.require_engines_configured(JobOptions(engine="vllm", ocr_mode=OcrMode.TEXT_LAYER), Settings())
