"""The vLLM simulator's ``POST /v1/audio/transcriptions``: a Whisper server for tests (test support).

Mounted in :mod:`tests.support.vllm_simulator`'s app, so it shares that server's model name, slots,
counters and faults: start the simulator with ``model="openai/whisper-large-v3-turbo"`` to have it look
like vLLM serving Whisper (another ``model`` in a request is a 404, as for chat).

Requests are vLLM/OpenAI multipart forms: ``file`` (a 16-bit mono WAV, any rate), ``model``,
``response_format`` (``json``, ``text``, ``verbose_json``), ``timestamp_granularities[]`` (``segment``,
``word``), ``language``, ``prompt``, ``temperature``. Anything else, or a file that is not such a WAV, is
a 400 ``BadRequestError``.

Answers: the text comes from a map the test fills (``POST /sim/audio/texts`` with ``{sha256: text}``, the
key :func:`audio_key` of the piece: SHA-256 of its 16-bit samples, i.e. of the WAV's data frames); audio
not in the map is transcribed with faster-whisper tiny.en on the CPU (cached per key; ``fallback`` "none"
answers an empty text instead). verbose_json carries segments: faster-whisper's own, or, for mapped
texts, one per sentence with times shared out by length over the audio (words likewise when asked).

Scheduling: a request holds one of the simulator's ``--max-num-seqs`` slots (excess requests wait FIFO, as
chat requests do, and in the same queue) for ``(prefill_ms + ms_per_audio_s * audio seconds) / 1000``
seconds: the encoder's fixed pass over Whisper's 30 s window plus decoding that grows with speech. The
CPU transcription of the fallback happens before the slot, like ``--ocr tesseract``.

Faults: the simulator's own (``POST /sim/faults``) apply to audio requests too: ``drop``,
``overload_503``, ``rate_limit_429`` (with Retry-After) and ``slow_ms``. Audio-only counted faults
(``POST /sim/audio/faults``): ``server_error_500`` (500 at once) and ``garbage`` (200 whose body is not
JSON, after the slot). ``POST /sim/audio/config`` sets ``ms_per_audio_s``, ``verbose_json`` (false: refuse
it with 400 as vLLM before verbose_json support did) and ``fallback``; ``GET /sim/audio/stats`` reports,
``POST /sim/audio/reset`` clears texts, audio faults, config and counters (``/sim/reset`` does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import re
import wave
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pagemill.engines.audio_base import LANGUAGE_NAMES, SAMPLE_RATE, Pcm, Segment, Word, pcm_int16
from pagemill.errors import PagemillError

if TYPE_CHECKING:
    from pagemill.engines.faster_whisper_engine import FasterWhisperEngine
    from tests.support.vllm_simulator import Simulator

FORMATS = ("json", "text", "verbose_json")
OLD_VLLM_FORMAT_ERROR = "Currently only support response_format `text` or `json`"
_CACHE_SIZE = 256
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def audio_key(pcm: Pcm) -> str:
    """The map key of a piece: SHA-256 of the 16-bit samples a client's WAV of it carries."""
    return hashlib.sha256(pcm_int16(pcm)).hexdigest()


@dataclasses.dataclass
class AudioConfig:
    """Run-time settings of the endpoint (``POST /sim/audio/config``)."""

    ms_per_audio_s: float = 10.0
    verbose_json: bool = True
    fallback: str = "whisper"


@dataclasses.dataclass
class AudioFaults:
    """Audio-only counted faults; they decrement as they fire."""

    server_error_500: int = 0
    garbage: int = 0


@dataclasses.dataclass
class AudioCounters:
    """Since start or the last ``/sim/audio/reset``."""

    requests: int = 0
    completed: int = 0
    audio_seconds: float = 0.0
    answered_from: dict[str, int] = dataclasses.field(default_factory=dict)
    formats: dict[str, int] = dataclasses.field(default_factory=dict)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)


class BadAudio(Exception):
    """A 400 for the client."""


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The same OpenAI error body as the chat endpoint's ApiError.
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _update(target: Any, values: Any) -> Any:
    """A copy of dataclass ``target`` with ``values`` (a JSON object) replacing its fields, types checked."""
    if not isinstance(values, dict):
        raise ValueError("body must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(target)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown name(s) {unknown}; known: {sorted(fields)}")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        kind = type(getattr(target, name))
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"{name!r} needs true or false")
        if kind in (int, float) and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ValueError(f"{name!r} needs a number >= 0, got {value!r}")
        if kind is str and value not in ("whisper", "none"):
            raise ValueError(f"{name!r} must be 'whisper' or 'none'")
        changes[name] = kind(value)
    return dataclasses.replace(target, **changes)


class AudioEndpoint:
    """The transcription endpoint and its ``/sim/audio/*`` controls over a :class:`Simulator`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.config = AudioConfig()
        self.faults = AudioFaults()
        self.counters = AudioCounters()
        self.texts: dict[str, str] = {}
        self._cache: OrderedDict[str, list[Segment]] = OrderedDict()
        self._whisper: FasterWhisperEngine | None = None
        self._whisper_limit = asyncio.Semaphore(1)  # one model; more threads would only queue inside it

    def routes(self) -> list[Route]:
        """Routes to add to the simulator's app."""
        return [
            Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
            Route("/sim/audio/texts", self.set_texts, methods=["POST"]),
            Route("/sim/audio/faults", self.set_faults, methods=["POST"]),
            Route("/sim/audio/config", self.set_config, methods=["POST"]),
            Route("/sim/audio/stats", self.stats, methods=["GET"]),
            Route("/sim/audio/reset", self.reset, methods=["POST"]),
        ]

    # --- Controls -------------------------------------------------------------------------------------------

    async def set_texts(self, request: Request) -> Response:
        """Add ``{key: text}`` pairs to the map; answer with its size."""
        try:
            values = json.loads(await request.body() or b"{}")
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise ValueError("body must be a JSON object of key -> text")
        except ValueError as exc:
            return _error(400, str(exc), "BadRequestError")
        self.texts.update(values)
        return JSONResponse({"texts": len(self.texts)})

    async def set_faults(self, request: Request) -> Response:
        """Replace the given audio faults; answer with all of them."""
        return await self._replace(request, "faults")

    async def set_config(self, request: Request) -> Response:
        """Replace the given config fields; answer with the config."""
        return await self._replace(request, "config")

    async def _replace(self, request: Request, attribute: str) -> Response:
        try:
            updated = _update(getattr(self, attribute), json.loads(await request.body() or b"{}"))
        except ValueError as exc:
            return _error(400, str(exc), "BadRequestError")
        setattr(self, attribute, updated)
        return JSONResponse(dataclasses.asdict(updated))

    async def stats(self, request: Request) -> Response:
        """Counters, config, armed faults and the map's size."""
        return JSONResponse(
            {
                **dataclasses.asdict(self.counters),
                "config": dataclasses.asdict(self.config),
                "faults": dataclasses.asdict(self.faults),
                "texts": len(self.texts),
            }
        )

    async def reset(self, request: Request) -> Response:
        """Back to the start state (the loaded model and its cache stay: they are only a cost)."""
        self.config, self.faults, self.counters = AudioConfig(), AudioFaults(), AudioCounters()
        self.texts.clear()
        return JSONResponse({"reset": True})

    # --- The endpoint ---------------------------------------------------------------------------------------

    def _fail(self, kind: str, response: Response) -> Response:
        self.counters.errors[kind] = self.counters.errors.get(kind, 0) + 1
        self.sim.counters.error(kind)
        return response

    async def transcriptions(self, request: Request) -> Response:
        """Validate, apply faults, answer from the map or faster-whisper, hold a slot; abort on disconnect."""
        self.counters.requests += 1
        self.sim.counters.requests += 1
        try:
            form = await request.form()
            model = str(form.get("model") or self.sim.config.model)
            if model != self.sim.config.model:
                return self._fail(
                    "model_not_found", _error(404, f"The model `{model}` does not exist.", "NotFoundError")
                )
            pcm, seconds, key = await _read_wav(form.get("file"))
            options = _options(form, self.config.verbose_json)
        except BadAudio as exc:
            return self._fail("invalid_request", _error(400, str(exc), "BadRequestError"))

        fault = self.sim.faults.take(("drop", "overload_503", "rate_limit_429"))
        if fault is None and self.faults.server_error_500 > 0:
            self.faults.server_error_500 -= 1
            fault = "server_error_500"
        if fault is not None:
            response = self._fail(fault, self._fault_response(fault))
            if fault == "drop":
                await self.sim._drop_connection(request)
            return response  # a dropped connection gets nothing of it

        work = asyncio.ensure_future(self._complete(pcm, seconds, key, options))
        disconnect = asyncio.ensure_future(self.sim._wait_disconnect(request))
        done, _ = await asyncio.wait({work, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            self.sim.counters.aborted += 1
            return Response(status_code=499)  # nobody is listening any more
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect
        return work.result()

    def _fault_response(self, fault: str) -> Response:
        if fault == "overload_503":
            return _error(503, "The server is overloaded; please retry later.", "ServiceUnavailableError")
        if fault == "rate_limit_429":
            retry = {"Retry-After": str(self.sim.config.retry_after_s)}
            return _error(429, "Too many requests; please retry later.", "RateLimitError", retry)
        return _error(500, "Internal server error (injected).", "InternalServerError")  # and drop's

    async def _complete(self, pcm: Pcm, seconds: float, key: str, options: dict[str, Any]) -> Response:
        try:
            segments, source = await self._answer(pcm, key, options["prompt"])
        except PagemillError as exc:  # the stand-in model failed (a loop, no model): a server error
            return self._fail("whisper_failed", _error(500, exc.message, "InternalServerError"))
        text = " ".join(s.text for s in segments)
        slot_ms = self.sim.config.prefill_ms + self.config.ms_per_audio_s * seconds
        await self.sim.scheduler.run(slot_ms / 1000.0)
        if self.sim.faults.slow_ms > 0:
            await asyncio.sleep(self.sim.faults.slow_ms / 1000.0)
        if self.faults.garbage > 0:
            self.faults.garbage -= 1
            return self._fail("garbage", Response(b'{"text": "cut off mid', media_type="application/json"))
        fmt = options["response_format"]
        self.counters.completed += 1
        self.counters.audio_seconds += seconds
        self.counters.answered_from[source] = self.counters.answered_from.get(source, 0) + 1
        self.counters.formats[fmt] = self.counters.formats.get(fmt, 0) + 1
        self.sim.counters.completed += 1
        self.sim.counters.completion_tokens += math.ceil(len(text) / 4)
        self.sim.counters.finished["stop"] = self.sim.counters.finished.get("stop", 0) + 1
        if fmt == "text":
            return PlainTextResponse(text)
        if fmt == "json":
            return JSONResponse({"text": text})
        return JSONResponse(_verbose(text, segments, seconds, options))

    async def _answer(self, pcm: Pcm, key: str, prompt: str | None) -> tuple[list[Segment], str]:
        """The piece's segments and where they came from: ``map``, ``whisper``, ``cache`` or ``none``
        (the cache ignores the prompt: a stand-in model's answer need not vary with it)."""
        if key in self.texts:
            return _spread(self.texts[key], len(pcm) / SAMPLE_RATE), "map"
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], "cache"
        if self.config.fallback == "none":
            return [], "none"
        async with self._whisper_limit:
            segments = await asyncio.get_running_loop().run_in_executor(None, self._transcribe, pcm, prompt)
        self._cache[key] = segments
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return segments, "whisper"

    def _transcribe(self, pcm: Pcm, prompt: str | None) -> list[Segment]:
        if self._whisper is None:
            from pagemill.engines.faster_whisper_engine import FasterWhisperEngine
            from pagemill.settings import AudioSettings

            self._whisper = FasterWhisperEngine(AudioSettings())
        # tiny.en stands in for a multilingual server model: the language is left to it (English).
        return self._whisper.transcribe(pcm, language=None, prompt=prompt, word_timestamps=True).segments


async def _read_wav(upload: Any) -> tuple[Pcm, float, str]:
    """16 kHz float samples, duration and map key of an uploaded 16-bit mono WAV; BadAudio otherwise."""
    if not isinstance(upload, UploadFile):
        raise BadAudio("`file` is required: the audio to transcribe")
    data = await upload.read()
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise BadAudio("the simulator reads 16-bit mono WAV only")
            rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise BadAudio(f"the file is not a readable WAV: {exc}") from None
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32767.0
    if rate != SAMPLE_RATE and samples.size:
        count = round(samples.size * SAMPLE_RATE / rate)
        samples = np.interp(np.arange(count) / SAMPLE_RATE, np.arange(samples.size) / rate, samples)
    pcm = samples.astype(np.float32)
    return pcm, len(pcm) / SAMPLE_RATE, hashlib.sha256(frames).hexdigest()


def _options(form: Any, verbose_allowed: bool) -> dict[str, Any]:
    fmt = str(form.get("response_format") or "json")
    if fmt not in FORMATS or (fmt == "verbose_json" and not verbose_allowed):
        raise BadAudio(
            OLD_VLLM_FORMAT_ERROR if not verbose_allowed else f"response_format {fmt!r} is not supported"
        )
    granularities = [str(g) for g in form.getlist("timestamp_granularities[]")]
    if not set(granularities) <= {"segment", "word"}:
        raise BadAudio(f"timestamp_granularities[] must be segment or word, got {granularities}")
    try:
        float(form.get("temperature") or 0)
    except ValueError:
        raise BadAudio("temperature must be a number") from None
    language = form.get("language")
    return {
        "response_format": fmt,
        "words": "word" in granularities,
        "language": str(language) if language else None,
        "prompt": str(form.get("prompt") or "") or None,
    }


def _spread(text: str, seconds: float) -> list[Segment]:
    """One segment per sentence of ``text``, the piece's time shared out by their length."""
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    total = sum(len(s) for s in sentences) or 1
    segments, at = [], 0.0
    for sentence in sentences:
        length = seconds * len(sentence) / total
        segments.append(Segment(round(at, 3), round(at + length, 3), sentence, -0.2, 0.01))
        at += length
    return segments


def _verbose(text: str, segments: list[Segment], seconds: float, options: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI verbose_json body; words top-level as OpenAI sends them."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(options["language"] or "en", options["language"]),
        "duration": round(seconds, 3),
        "text": text,
        "segments": [
            {
                "id": index,
                "seek": 0,
                "start": s.start_s,
                "end": s.end_s,
                "text": " " + s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": 1.2,
                "no_speech_prob": s.no_speech_prob,
            }
            for index, s in enumerate(segments)
        ],
    }
    if options["words"]:
        body["words"] = [
            {"word": w.text, "start": w.start_s, "end": w.end_s}
            for s in segments
            for w in (s.words if s.words is not None else _word_times(s))
        ]
    return body


def _word_times(segment: Segment) -> list[Word]:
    """Words of a mapped segment, its time shared out by their length."""
    words = segment.text.split()
    total = sum(len(w) for w in words) or 1
    out, at = [], segment.start_s
    for word in words:
        length = (segment.end_s - segment.start_s) * len(word) / total
        out.append(Word(round(at, 3), round(at + length, 3), word))
        at += length
    return out


class AudioSimClient:
    """Test-side helper for the ``/sim/audio/*`` controls of a running simulator at ``base_url``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/sim/audio/{path}", json=body, timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def add_text(self, pcm: Pcm, text: str) -> str:
        """Make the server answer ``text`` for ``pcm``; returns the key."""
        key = audio_key(pcm)
        self._post("texts", {key: text})
        return key

    def set_faults(self, **faults: int) -> dict[str, Any]:
        """Arm audio-only faults (``server_error_500=1``, ``garbage=1``)."""
        return self._post("faults", faults)

    def configure(self, **config: Any) -> dict[str, Any]:
        """Set ``ms_per_audio_s``, ``verbose_json``, ``fallback``."""
        return self._post("config", config)

    def reset(self) -> None:
        """Clear texts, audio faults, config and counters."""
        self._post("reset", {})

    def stats(self) -> dict[str, Any]:
        """``GET /sim/audio/stats``."""
        response = httpx.get(f"{self.base_url}/sim/audio/stats", timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result
