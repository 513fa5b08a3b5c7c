"""Transcribing one piece of a recording (a page of an audio job) through the job's chain of speech engines.
No database here.

Segment times come back relative to the piece; they are moved to recording time here (the piece's start
added), so a page's segments, its markdown timestamps and the job's subtitles all count from the start of
the recording.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pagemill import deadlines
from pagemill.documents.audio.source import AudioSource
from pagemill.documents.audio.split import Piece
from pagemill.documents.audio.subtitles import MarkdownStyle, to_markdown
from pagemill.documents.audio.subtitles import Segment as TimedSegment
from pagemill.engines.audio_base import Segment, Transcript
from pagemill.engines.audio_registry import get_audio_engine
from pagemill.engines.base import PageResult
from pagemill.errors import EngineFailed, EngineUnavailable
from pagemill.jobs.options import JobOptions, TimestampStyle
from pagemill.metrics import FALLBACKS
from pagemill.settings import Settings

log = logging.getLogger(__name__)


def audio_chain(options: JobOptions, settings: Settings) -> list[str]:
    """The speech engines a piece may try, in order: the job's (or ``audio.default_engine``), then
    ``audio.fallback``, at most ``engines.max_fallback_attempts`` of them."""
    first = options.engine or settings.audio.default_engine
    rest = [name for name in dict.fromkeys(settings.audio.fallback) if name != first]
    return [first, *rest[: settings.engines.max_fallback_attempts]]


def transcribe_piece(
    source: AudioSource, index: int, chain: list[str], settings: Settings, options: JobOptions, start: int = 0
) -> PageResult:
    """Piece ``index`` transcribed by the first engine of ``chain[start:]`` that succeeds (EngineFailed or
    EngineUnavailable hands it to the next; the last one's error is raised)."""
    piece = source.piece(index)
    started = time.perf_counter()
    samples = source.samples(index)
    loaded_ms = (time.perf_counter() - started) * 1000
    if not piece.speech or not len(samples):
        return _result(piece.start_s, piece.end_s, None, options, {"speech": False})
    fallbacks: list[dict[str, Any]] = []
    candidates = chain[start:] or chain[-1:]
    for position, name in enumerate(candidates):
        deadlines.check()  # no fallback is started once the piece's time is spent
        engine = get_audio_engine(name, settings)
        try:
            transcript = engine.transcribe(
                samples,
                language=options.language,
                prompt=options.prompt,
                word_timestamps=options.word_timestamps,
            )
        except (EngineFailed, EngineUnavailable) as exc:
            if position == len(candidates) - 1:
                raise
            fallbacks.append({"engine": name, "code": exc.code, "reason": exc.details.get("reason")})
            FALLBACKS.labels(engine=name, reason=str(exc.details.get("reason") or exc.code)).inc()
            log.warning(
                "fallback: piece %d: engine %s failed (%s); trying %s",
                index + 1,
                name,
                exc.code,
                candidates[position + 1],
            )
            continue
        extra: dict[str, Any] = {"fallbacks": fallbacks} if fallbacks else {}
        result = _result(piece.start_s, piece.end_s, transcript, options, extra)
        result.timings_ms["load"] = loaded_ms
        return result
    raise AssertionError("unreachable: the loop returns or raises")


def shifted(segment: Segment, offset: float) -> dict[str, Any]:
    """A segment's JSON with its times (and its words') moved by ``offset`` seconds."""
    body = segment.to_dict()
    body["start_s"] = round(segment.start_s + offset, 3)
    body["end_s"] = round(segment.end_s + offset, 3)
    if body.get("words"):
        body["words"] = [
            {**word, "start_s": round(word["start_s"] + offset, 3), "end_s": round(word["end_s"] + offset, 3)}
            for word in body["words"]
        ]
    return body


def _result(
    start_s: float, end_s: float, transcript: Transcript | None, options: JobOptions, extra: dict[str, Any]
) -> PageResult:
    segments = [shifted(segment, start_s) for segment in transcript.segments] if transcript else []
    timed = [TimedSegment(s["start_s"], s["end_s"], s["text"]) for s in segments]
    text = " ".join(" ".join(s["text"].split()) for s in segments).strip()
    settings: dict[str, Any] = {
        "start_s": round(start_s, 3),
        "end_s": round(end_s, 3),
        **(transcript.settings if transcript else {}),
        **extra,
    }
    if transcript is not None and transcript.language:
        settings["language"] = transcript.language
    style: MarkdownStyle = "inline" if options.timestamps == TimestampStyle.INLINE else "headings"
    markdown = to_markdown(timed, style, pieces=[Piece(start_s, end_s)]) if timed else ""
    return PageResult(
        text=text,
        markdown=markdown,
        engine=transcript.engine if transcript else "none",
        model=transcript.model if transcript else None,
        settings=settings,
        timings_ms=dict(transcript.timings_ms) if transcript else {},
        segments=segments,
    )
