"""Speech to text through an OpenAI-compatible ``/v1/audio/transcriptions`` (vLLM serving Whisper, or hosted).

One piece is one multipart ``POST {base_url}/v1/audio/transcriptions``: the piece as a 16-bit WAV, ``model``,
``response_format=verbose_json`` (segments with times), ``timestamp_granularities[]`` (``segment``, plus
``word`` when asked), ``temperature=0``, and ``language``/``prompt`` when given. A server that refuses
verbose_json with a 400 (older vLLM, ``gpt-4o-transcribe``) is asked again with ``json``; when that works
the server is remembered as json-only for the rest of the process, and its pieces come back as one segment
spanning the piece.

The client, the health check and the retries are :mod:`pagemill.engines.openai_http`'s, shared with the OCR
engine (:mod:`pagemill.engines.vllm`), so errors are mapped as it maps them and the fallback chain acts the
same way:

* 429, 502, 503, 504, connection refused or dropped, connect or read timeout: retried ``max_retries`` times
  (exponential backoff with full jitter; a Retry-After header wins), then EngineUnavailable {reason,
  status, attempts};
* EngineFailed, not retried, with ``reason``: 401/403 ``unauthorized``, 404 ``model_not_found``, other 4xx
  ``bad_request``, other 5xx ``server_error``, a 200 that is not a transcription ``malformed_response``, a
  transcript looping on itself ``degenerate_repetition``;
* no ``base_url``: EngineNotConfigured naming the setting.

A piece's own time limit is the caller's (pagemill.deadlines): inside one, every request's timeout is at
most what is left of it, and once it is spent the piece's PROCESSING_TIMEOUT is raised, not retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, NoReturn

import httpx

from pagemill.engines.audio_base import (
    Pcm,
    Segment,
    Transcript,
    Word,
    as_pcm,
    duration_s,
    language_code,
    wav_bytes,
)
from pagemill.engines.base import EngineHealth
from pagemill.engines.capacity import requests_in_flight
from pagemill.engines.openai_http import ServerClient, error_message, failure_reason, root_url
from pagemill.engines.vllm import detect_repetition
from pagemill.errors import EngineFailed, EngineNotConfigured
from pagemill.settings import WhisperServerSettings, get_settings

__all__ = ["OpenAiTranscriptionEngine", "base_url_setting", "parse_transcription", "wav_bytes"]

logger = logging.getLogger("pagemill.engines.whisper_openai")

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"

_json_only: set[tuple[str, str]] = set()
"""(server root, model) pairs that refused verbose_json and answered json: asked with json from then on."""


def base_url_setting(name: str) -> tuple[str, str]:
    """The setting that points audio engine ``name`` at its server: its dotted name and its variable."""
    group = name.replace("-", "_")
    return f"audio.{group}.base_url", f"PAGEMILL_AUDIO__{group.upper()}__BASE_URL"


def forget_json_only() -> None:
    """Forget which servers refused verbose_json (tests)."""
    _json_only.clear()


class _FormatRefused(Exception):
    """A 400 to a verbose_json request: the format may be what the server refuses."""


class OpenAiTranscriptionEngine:
    """A speech engine backed by an OpenAI-compatible transcription endpoint (``whisper-vllm``,
    ``remote-openai``). Thread-safe: a GPU worker calls it from ``max_in_flight`` threads at once."""

    def __init__(
        self,
        settings: WhisperServerSettings,
        name: str,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``transport``, ``sleep`` and ``rng`` are for tests. No connection is made here."""
        self.name = name
        self.settings = settings
        self._sleep = sleep or time.sleep
        self._rng = rng or random.Random()
        self._server = ServerClient(
            settings,
            engine=name,
            kind="speech engine",
            log=logger,
            in_flight=self._in_flight,
            transport=transport,
        )

    @property
    def model(self) -> str:
        """The model name the server is asked for."""
        return self.settings.model

    def _in_flight(self) -> int:
        # Every GPU-worker thread may hold a claimed piece (the number the worker chose at start, as the OCR
        # engine's pool is sized): fewer connections leave server slots idle.
        threads = requests_in_flight(get_settings().engines.vllm)
        return max(self.settings.max_in_flight, threads)

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        self._server.close()

    def __enter__(self) -> OpenAiTranscriptionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _root(self) -> str:
        if not self.settings.base_url:
            setting, variable = base_url_setting(self.name)
            raise EngineNotConfigured(
                f"The audio engine {self.name} has no server configured here: the operator must set "
                f"{variable}. Choose another audio engine (e.g. faster-whisper) meanwhile.",
                engines=[self.name],
                settings=[setting],
                variables=[variable],
            )
        return root_url(self.settings.base_url)

    # --- Health ---------------------------------------------------------------------------------------------

    def check(self) -> EngineHealth:
        """``GET /v1/models`` with a short timeout; ok only when the model is listed. Never raises."""
        return self._server.check(self.model)

    # --- Transcription --------------------------------------------------------------------------------------

    def form_fields(
        self, response_format: str, *, language: str | None, prompt: str | None, word_timestamps: bool
    ) -> dict[str, Any]:
        """The multipart fields (besides ``file``) of one request."""
        fields: dict[str, Any] = {"model": self.model, "response_format": response_format, "temperature": "0"}
        if response_format == "verbose_json":
            # OpenAI takes granularities with verbose_json only; "segment" is the default, sent to be plain.
            fields["timestamp_granularities[]"] = ["segment", "word"] if word_timestamps else ["segment"]
        if language:
            fields["language"] = language
        if prompt:
            fields["prompt"] = prompt
        return fields

    def transcribe(
        self, pcm: Pcm, *, language: str | None, prompt: str | None, word_timestamps: bool
    ) -> Transcript:
        """Transcribe one piece; raises as the module docstring tabulates."""
        root = self._root()
        samples = as_pcm(pcm)
        seconds = duration_s(samples)
        code = language_code(language)
        started = time.perf_counter()
        audio = wav_bytes(samples)
        encoded = time.perf_counter()
        response, response_format, attempts = self._ask(
            root,
            audio,
            lambda fmt: self.form_fields(fmt, language=code, prompt=prompt, word_timestamps=word_timestamps),
        )
        finished = time.perf_counter()
        try:
            text, segments, detected = parse_transcription(response.json(), seconds, word_timestamps)
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            self._fail(
                "the server's answer is not a transcription", "malformed_response", problem=str(exc)[:200]
            )
        if detect_repetition(text):
            self._fail("the transcript repeats itself (a decoding loop)", "degenerate_repetition")
        settings: dict[str, Any] = {
            "response_format": response_format,
            "word_timestamps": word_timestamps,
            "temperature": 0.0,
            "attempts": attempts,
            "duration_s": round(seconds, 3),
        }
        if word_timestamps and all(s.words is None for s in segments):
            settings["words_unavailable"] = True  # json-only servers, or servers that ignore word granularity
        return Transcript(
            text=text,
            segments=segments,
            language=language_code(detected) or code,
            engine=self.name,
            model=self.model,
            settings=settings,
            timings_ms={"encode": (encoded - started) * 1000.0, "request": (finished - encoded) * 1000.0},
        )

    def _ask(
        self, root: str, audio: bytes, fields: Callable[[str], dict[str, Any]]
    ) -> tuple[httpx.Response, str, int]:
        """(200 answer, its response_format, attempts): verbose_json, or json for a server known to refuse
        it or refusing it now (remembered when json then works)."""
        url = f"{root}{TRANSCRIPTIONS_PATH}"
        key = (root, self.model)
        refused = 0
        if key not in _json_only:
            try:
                response, attempts = self._post_with_retries(url, audio, fields("verbose_json"))
                return response, "verbose_json", attempts
            except _FormatRefused:
                refused = 1
        response, attempts = self._post_with_retries(url, audio, fields("json"))
        if refused and key not in _json_only:
            logger.warning("engine %s: %s refuses verbose_json; asking for json from now on", self.name, root)
            _json_only.add(key)
        return response, "json", attempts + refused

    def _fail(self, why: str, reason: str, **details: Any) -> NoReturn:
        logger.warning("engine %s: piece failed: %s (%s)", self.name, why, reason)
        message = f"The speech engine could not transcribe this piece: {why}."
        raise EngineFailed(message, engine=self.name, reason=reason, **details)

    def _post_with_retries(
        self, url: str, audio: bytes, fields: dict[str, Any]
    ) -> tuple[httpx.Response, int]:
        return self._server.with_retries(
            lambda: self._post_once(url, audio, fields), sleep=self._sleep, rng=self._rng
        )

    def _post_once(self, url: str, audio: bytes, fields: dict[str, Any]) -> httpx.Response:
        """One attempt (transient failures raise, for the retries); an HTTP error fails the piece, but for
        a 400 to verbose_json, which may be the format's fault (_FormatRefused)."""
        response = self._server.post(url, data=fields, files={"file": ("piece.wav", audio, "audio/wav")})
        status = response.status_code
        if status == 200:
            return response
        message, _ = error_message(response)
        if status == 400 and fields.get("response_format") == "verbose_json":
            # Asked again with json; if that works, the format was the trouble (remembered by the caller).
            logger.info("engine %s: verbose_json refused (%s); trying json", self.name, message[:200])
            raise _FormatRefused(message)
        reason = failure_reason(status)
        self._fail(f"the server answered HTTP {status}", reason, status=status, server_message=message)


# --- Parsing the answer -----------------------------------------------------------------------------------


def parse_transcription(
    data: Any, duration: float, word_timestamps: bool
) -> tuple[str, list[Segment], str | None]:
    """(text, segments, language as sent) from a json or verbose_json answer for a piece of ``duration``
    seconds. Times are clipped to the piece. Without segments, a non-empty text becomes one segment spanning
    the piece. Words come per segment (some servers) or top-level (OpenAI), then are put in the segment their
    middle falls in. ValueError or TypeError when the answer is not a transcription."""
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError("no text")
    text = data["text"].strip()
    language = data.get("language")
    raw_segments = data.get("segments")
    if raw_segments is not None and not isinstance(raw_segments, list):
        raise ValueError("segments is not a list")
    top_words = _words(data.get("words"), duration) if word_timestamps else None
    segments: list[Segment] = []
    for raw in raw_segments or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
            raise ValueError("a segment without text")
        words = _words(raw.get("words"), duration) if word_timestamps else None
        segments.append(
            Segment(
                start_s=_time(raw.get("start"), duration),
                end_s=_time(raw.get("end"), duration),
                text=raw["text"].strip(),
                avg_logprob=_optional_float(raw.get("avg_logprob")),
                no_speech_prob=_optional_float(raw.get("no_speech_prob")),
                words=words,
            )
        )
    if not segments and text:
        segments = [Segment(start_s=0.0, end_s=round(duration, 3), text=text)]
    if top_words is not None:
        segments = _assign_words(segments, top_words)
    return text, segments, language if isinstance(language, str) else None


def _time(value: Any, duration: float) -> float:
    # vLLM and OpenAI send numbers; some servers send numeric strings ("duration": "5.0").
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"a time is {type(value).__name__}")
    return round(min(max(float(value), 0.0), duration), 3)


def _optional_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _words(raw: Any, duration: float) -> list[Word] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise TypeError("words is not a list")
    words: list[Word] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("word"), str):
            raise ValueError("a word without text")
        words.append(
            Word(
                start_s=_time(item.get("start"), duration),
                end_s=_time(item.get("end"), duration),
                text=item["word"].strip(),
                probability=_optional_float(item.get("probability")),
            )
        )
    return words


def _assign_words(segments: list[Segment], words: list[Word]) -> list[Segment]:
    """Segments with the top-level ``words`` put where their middle falls (the nearest segment otherwise)."""
    if not segments:
        return segments
    buckets: list[list[Word]] = [[] for _ in segments]
    for word in words:
        middle = (word.start_s + word.end_s) / 2
        index = min(
            range(len(segments)),
            key=lambda i: max(segments[i].start_s - middle, middle - segments[i].end_s, 0.0),
        )
        buckets[index].append(word)
    return [
        Segment(s.start_s, s.end_s, s.text, s.avg_logprob, s.no_speech_prob, s.words or bucket)
        for s, bucket in zip(segments, buckets, strict=True)
    ]
