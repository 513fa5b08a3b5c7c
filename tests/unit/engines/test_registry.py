"""The engine registry: names, caching, orientation wrapping, nothing loaded at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pagemill.engines.orientation import OrientedEngine
from pagemill.engines.rapidocr import RapidOcrEngine
from pagemill.engines.registry import clear_engines, get_ocr_engine
from pagemill.engines.tesseract import TesseractEngine
from pagemill.errors import ValidationFailed
from pagemill.settings import OcrSettings


@pytest.fixture(autouse=True)
def fresh_registry() -> None:
    clear_engines()


def test_unknown_engine_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        get_ocr_engine("easyocr", OcrSettings())
    assert caught.value.code == "VALIDATION_ERROR" and caught.value.details["engine"] == "easyocr"


def test_engines_are_cached_per_name_and_settings() -> None:
    settings = OcrSettings()
    assert get_ocr_engine("tesseract", settings) is get_ocr_engine("tesseract", OcrSettings())
    assert get_ocr_engine("tesseract", settings) is not get_ocr_engine("rapidocr", settings)
    assert get_ocr_engine("tesseract", settings) is not get_ocr_engine("tesseract", OcrSettings(dpi=200))


def test_orientation_wraps_the_engine_when_on() -> None:
    wrapped = get_ocr_engine("rapidocr", OcrSettings(detect_orientation=True))
    assert isinstance(wrapped, OrientedEngine) and isinstance(wrapped.inner, RapidOcrEngine)
    assert wrapped.name == "rapidocr"
    plain = get_ocr_engine("tesseract", OcrSettings(detect_orientation=False))
    assert isinstance(plain, TesseractEngine)


def test_importing_the_registry_loads_no_engine() -> None:
    code = (
        "import sys, pagemill.engines.registry\n"
        "assert 'rapidocr_onnxruntime' not in sys.modules\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "assert 'pagemill.engines.tesseract' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_engine_names_the_pool_that_runs_it() -> None:
    from pagemill.engines.registry import ENGINE_NAMES, ENGINE_POOLS, OCR_ENGINES, engine_pool

    assert set(ENGINE_POOLS) == set(ENGINE_NAMES)
    assert {engine_pool(name) for name in OCR_ENGINES} == {"cpu"}
    assert engine_pool("vllm") == "gpu" and engine_pool("remote-openai") == "gpu"
    with pytest.raises(ValidationFailed):
        engine_pool("nonesuch")
