"""The engine chain: order, limits, routing to the first healthy engine, fallback on engine failures."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from pagemill.engines.base import PageResult
from pagemill.errors import CorruptFile, EngineFailed, EngineUnavailable
from pagemill.jobs import reading
from pagemill.jobs.options import JobOptions
from pagemill.settings import EngineSettings, Settings


def settings_with(**engines: Any) -> Settings:
    return Settings(engines=EngineSettings(**engines))


def test_chain_starts_with_the_job_engine_then_fallbacks_within_the_limit() -> None:
    settings = settings_with(default="vllm", fallback=["remote-openai", "tesseract", "rapidocr"])
    assert reading.engine_chain(JobOptions(), settings) == ["vllm", "remote-openai", "tesseract"]
    assert reading.engine_chain(JobOptions(engine="tesseract"), settings) == [
        "tesseract",
        "remote-openai",
        "rapidocr",
    ]
    none = settings_with(default="vllm", fallback=["tesseract"], max_fallback_attempts=0)
    assert reading.engine_chain(JobOptions(), none) == ["vllm"]


def test_routing_skips_engines_that_are_not_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    healthy = {"vllm": False, "remote-openai": True, "tesseract": True}
    monkeypatch.setattr(reading, "engine_healthy", lambda name, _settings: healthy[name])
    chain = ["vllm", "remote-openai", "tesseract"]
    assert reading.routed_start(chain, Settings()) == 1
    healthy["vllm"] = True
    assert reading.routed_start(chain, Settings()) == 0
    healthy.update({"vllm": False, "remote-openai": False, "tesseract": False})
    assert reading.routed_start(chain, Settings()) == 2, "the last engine is the last resort"


class FakeSource:
    is_pdf = False
    page_count = 1

    def __init__(self) -> None:
        self.renders: list[int | None] = []

    def render(self, index: int, dpi: int, max_side: int | None = None) -> Image.Image:
        self.renders.append(max_side)
        return Image.new("L", (100, 100), 255)


class FakeEngine:
    def __init__(self, name: str, outcome: Exception | str) -> None:
        self.name = name
        self.outcome = outcome
        self.calls = 0

    def recognize(self, image: Image.Image) -> PageResult:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return PageResult(text=self.outcome, markdown=self.outcome, engine=self.name)


def use_engines(monkeypatch: pytest.MonkeyPatch, engines: dict[str, FakeEngine]) -> None:
    monkeypatch.setattr(reading, "get_engine", lambda name, _settings: engines[name])


def test_a_failing_engine_hands_the_page_to_the_next_and_it_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engines = {
        "vllm": FakeEngine("vllm", EngineFailed(reason="truncated")),
        "remote-openai": FakeEngine("remote-openai", EngineUnavailable(reason="503")),
        "tesseract": FakeEngine("tesseract", "read by tesseract"),
    }
    use_engines(monkeypatch, engines)
    result = reading.ocr_page(FakeSource(), 0, list(engines), Settings())  # type: ignore[arg-type]
    assert result.engine == "tesseract" and result.text == "read by tesseract"
    assert result.settings["fallbacks"] == [
        {"engine": "vllm", "code": "ENGINE_FAILED", "reason": "truncated"},
        {"engine": "remote-openai", "code": "ENGINE_UNAVAILABLE", "reason": "503"},
    ]
    assert [e.calls for e in engines.values()] == [1, 1, 1]


def test_the_last_engines_error_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    engines = {"vllm": FakeEngine("vllm", EngineFailed(reason="degenerate_repetition"))}
    use_engines(monkeypatch, engines)
    with pytest.raises(EngineFailed):
        reading.ocr_page(FakeSource(), 0, ["vllm"], Settings())  # type: ignore[arg-type]


def test_other_errors_are_not_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    engines = {"vllm": FakeEngine("vllm", CorruptFile()), "tesseract": FakeEngine("tesseract", "x")}
    use_engines(monkeypatch, engines)
    with pytest.raises(CorruptFile):
        reading.ocr_page(FakeSource(), 0, ["vllm", "tesseract"], Settings())  # type: ignore[arg-type]
    assert engines["tesseract"].calls == 0


def test_a_routed_page_starts_at_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    engines = {"vllm": FakeEngine("vllm", "gpu text"), "tesseract": FakeEngine("tesseract", "cpu text")}
    use_engines(monkeypatch, engines)
    result = reading.ocr_page(FakeSource(), 0, ["vllm", "tesseract"], Settings(), start=1)  # type: ignore[arg-type]
    assert result.engine == "tesseract" and engines["vllm"].calls == 0


def test_model_engines_get_a_render_at_their_size_cpu_engines_the_full_dpi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = FakeEngine("vllm", EngineFailed(reason="truncated"))
    model.image_max_side = 1280  # type: ignore[attr-defined]
    engines = {"vllm": model, "tesseract": FakeEngine("tesseract", "x")}
    use_engines(monkeypatch, engines)
    source = FakeSource()
    reading.ocr_page(source, 0, ["vllm", "tesseract"], Settings())  # type: ignore[arg-type]
    assert source.renders == [1280, None]
