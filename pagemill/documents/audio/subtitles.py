"""Transcripts as subtitles (SubRip, WebVTT) and as markdown with timestamps.

Cue rules, for both subtitle formats: cues are in time order and never overlap or run backwards (a cue that
starts before the previous one ends starts when it ends; a cue that would end after the next one starts ends
there; a segment whose end is not after its start is shown for 2 s, or until the next); empty texts are
skipped; whitespace is collapsed; text is wrapped at :data:`LINE_CHARS` characters per line, at most
:data:`MAX_LINES` lines per cue, and a longer text is split into several cues that share the segment's time
in proportion to their length. Times are in whole milliseconds.
"""

from __future__ import annotations

import bisect
import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

LINE_CHARS: Final = 42
"""Characters per subtitle line (the common broadcast guideline)."""

MAX_LINES: Final = 2
"""Lines per cue."""

_MIN_CUE_MS: Final = 1  # a cue must end after it starts (WebVTT requires it)
_FALLBACK_CUE_MS: Final = 2000  # for a segment whose end is not after its start
_WHITESPACE = re.compile(r"\s+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")
_MD_LINE_START = re.compile(r"^(#|[-+]\s|\d+[.)]\s|>|=+\s*$)")

MarkdownStyle = Literal["headings", "inline"]


@dataclass(frozen=True, slots=True)
class Segment:
    """Text spoken between two times (seconds from the start of the recording)."""

    start_s: float
    end_s: float
    text: str


class TimedText(Protocol):
    """Anything with a start, an end and a text: a :class:`Segment`, or an engine's segment once the job has
    moved it from piece time to recording time."""

    @property
    def start_s(self) -> float: ...  # pragma: no cover - protocol

    @property
    def end_s(self) -> float: ...  # pragma: no cover - protocol

    @property
    def text(self) -> str: ...  # pragma: no cover - protocol


class TimeSpan(Protocol):
    """Anything with a start and an end in seconds, such as a :class:`.split.Piece`."""

    @property
    def start_s(self) -> float: ...  # pragma: no cover - protocol

    @property
    def end_s(self) -> float: ...  # pragma: no cover - protocol


@dataclass(frozen=True, slots=True)
class _Cue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


def to_srt(segments: Iterable[TimedText]) -> str:
    """SubRip: numbered cues from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line between cues."""
    blocks = [
        f"{number}\n{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}\n"
        + "\n".join(cue.lines)
        for number, cue in enumerate(_cues(segments), start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def to_vtt(segments: Iterable[TimedText]) -> str:
    """WebVTT: a ``WEBVTT`` header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` separated by blank lines;
    ``&``, ``<`` and ``>`` in the text are escaped."""
    blocks = [
        f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}\n"
        + "\n".join(_vtt_escape(line) for line in cue.lines)
        for cue in _cues(segments)
    ]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n" if blocks else "WEBVTT\n"


def to_markdown(
    segments: Iterable[TimedText],
    style: MarkdownStyle = "headings",
    *,
    pieces: Sequence[TimeSpan] | None = None,
) -> str:
    """The transcript as markdown with ``HH:MM:SS`` timestamps (markdown characters in the text escaped).

    ``headings``: a ``## 00:01:05`` heading before each piece's text (``pieces``: the recording's pieces; a
    segment belongs to the last piece starting at or before it; without ``pieces``, one heading for all).
    ``inline``: one paragraph, each segment preceded by ``[00:01:05]``.
    """
    ordered = [s for s in sorted(segments, key=lambda s: s.start_s) if _clean(s.text)]
    if not ordered:
        return ""
    if style == "inline":
        return " ".join(f"[{_clock(s.start_s)}] {_md_escape(_clean(s.text))}" for s in ordered) + "\n"
    if style != "headings":
        raise ValueError(f"unknown markdown style {style!r}")
    groups: list[tuple[float, list[TimedText]]] = []
    if pieces:
        starts = sorted(piece.start_s for piece in pieces)
        by_piece: dict[int, list[TimedText]] = {}
        for segment in ordered:
            index = max(0, bisect.bisect_right(starts, segment.start_s) - 1)
            by_piece.setdefault(index, []).append(segment)
        groups = [(starts[i], group) for i, group in sorted(by_piece.items())]
    else:
        groups = [(ordered[0].start_s, ordered)]
    sections = [
        f"## {_clock(start)}\n\n" + _md_escape(" ".join(_clean(s.text) for s in group))
        for start, group in groups
    ]
    return "\n\n".join(sections) + "\n"


def _cues(segments: Iterable[TimedText]) -> list[_Cue]:
    """Cues in order, wrapped and split, with times that never overlap or run backwards."""
    timed = sorted(
        (
            (_ms(s.start_s), _ms(s.end_s), text)
            for s in segments
            if (text := _clean(s.text)) and math.isfinite(s.start_s) and math.isfinite(s.end_s)
        ),
        key=lambda item: (item[0], item[1]),
    )
    cues: list[_Cue] = []
    previous_end = 0
    for index, (start_ms, end_ms, text) in enumerate(timed):
        start_ms = max(start_ms, previous_end)
        if end_ms <= start_ms:
            end_ms = start_ms + _FALLBACK_CUE_MS  # no usable end: show it a while, until the next cue
        if index + 1 < len(timed) and timed[index + 1][0] > start_ms:
            end_ms = min(end_ms, timed[index + 1][0])
        end_ms = max(end_ms, start_ms + _MIN_CUE_MS)
        cues.extend(_split_cue(start_ms, end_ms, text))
        previous_end = cues[-1].end_ms
    return cues


def _split_cue(start_ms: int, end_ms: int, text: str) -> list[_Cue]:
    """One cue per :data:`MAX_LINES` wrapped lines, each timed in proportion to its characters."""
    lines = textwrap.wrap(text, LINE_CHARS, break_long_words=True, break_on_hyphens=False)
    groups = [tuple(lines[i : i + MAX_LINES]) for i in range(0, len(lines), MAX_LINES)]
    if len(groups) == 1:
        return [_Cue(start_ms, end_ms, groups[0])]
    weights = [sum(len(line) for line in group) for group in groups]
    total = sum(weights)
    cues: list[_Cue] = []
    done = 0
    cue_start = start_ms
    for group, weight in zip(groups, weights, strict=True):
        done += weight
        cue_end = start_ms + round((end_ms - start_ms) * done / total)
        if cue_end <= cue_start:
            cue_end = cue_start + _MIN_CUE_MS  # a segment too short to share: later cues run on
        cues.append(_Cue(cue_start, cue_end, group))
        cue_start = cue_end
    return cues


def _clean(text: str) -> str:
    # "-->" would end a cue's timing line in a lenient parser's eyes; whitespace runs (new lines, blank
    # lines) would break the cue structure.
    text = _WHITESPACE.sub(" ", text).strip()
    while "-->" in text:  # "--->" becomes "-->" on one pass
        text = text.replace("-->", "->")
    return text


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _timestamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _clock(seconds: float) -> str:
    whole = max(0, math.floor(seconds)) if math.isfinite(seconds) else 0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_escape(text: str) -> str:
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return "\\" + escaped if _MD_LINE_START.match(escaped) else escaped
