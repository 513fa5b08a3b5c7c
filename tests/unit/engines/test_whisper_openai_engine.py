"""The OpenAI-compatible speech engine on httpx.MockTransport, without a server: request shape,
retries and backoff, error mapping, the json fallback, deadlines, the shared client and health checks."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pagemill import deadlines
from pagemill.engines.audio_base import Segment, Transcript, wav_bytes
from pagemill.engines.whisper_openai import OpenAiTranscriptionEngine, forget_json_only
from pagemill.errors import EngineFailed, EngineNotConfigured, EngineUnavailable, ProcessingTimeout
from pagemill.settings import WhisperServerSettings
from tests.unit.engines.audio_helpers import PIECE, verbose

Handler = Callable[[httpx.Request], httpx.Response]


class MaxRandom(random.Random):
    """Jitter that always picks the top of the window, so the backoff ceiling is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


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
    assert engine._server._client is not None
    engine.close()
    assert engine._server._client is None


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
