"""SRT, WebVTT and markdown transcripts, checked by strict parsers written here (no subtitle library is a
dependency), by hand-written cases and by generated segments."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagemill.documents.audio.split import Piece
from pagemill.documents.audio.subtitles import LINE_CHARS, MAX_LINES, Segment, to_markdown, to_srt, to_vtt

_SRT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"
_VTT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
_SRT_TIMING = re.compile(f"{_SRT_TIME} --> {_SRT_TIME}")
_VTT_TIMING = re.compile(f"{_VTT_TIME} --> {_VTT_TIME}")
_VTT_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}

Cue = tuple[int, int, list[str]]


def _ms(parts: tuple[str, ...]) -> int:
    hours, minutes, seconds, millis = (int(p) for p in parts)
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


def _check_cues(cues: list[Cue]) -> None:
    previous_end = 0
    for start, end, lines in cues:
        assert start < end, "a cue runs backwards or lasts nothing"
        assert start >= previous_end, "cues overlap"
        previous_end = end
        assert 1 <= len(lines) <= MAX_LINES
        for line in lines:
            assert line and line == line.strip() and len(line) <= LINE_CHARS and "-->" not in line


def parse_srt(text: str) -> list[Cue]:
    """A strict SubRip reader: numbered blocks from 1, one timing line, 1-2 text lines, one blank line
    between blocks, a final new line."""
    if text == "":
        return []
    assert text.endswith("\n") and not text.endswith("\n\n")
    cues: list[Cue] = []
    for number, block in enumerate(text[:-1].split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        match = _SRT_TIMING.fullmatch(lines[1])
        assert match, lines[1]
        cues.append((_ms(match.groups()[:4]), _ms(match.groups()[4:]), lines[2:]))
    _check_cues(cues)
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """A strict WebVTT reader: the header, then blocks of a timing line and 1-2 text lines, with ``&``,
    ``<`` and ``>`` only as entities. Returns the text unescaped."""
    assert text.startswith("WEBVTT\n")
    if text == "WEBVTT\n":
        return []
    assert text.startswith("WEBVTT\n\n") and text.endswith("\n") and not text.endswith("\n\n")
    cues: list[Cue] = []
    for block in text[len("WEBVTT\n\n") : -1].split("\n\n"):
        lines = block.split("\n")
        match = _VTT_TIMING.fullmatch(lines[0])
        assert match, lines[0]
        for line in lines[1:]:
            assert "<" not in line and ">" not in line
            assert "&" not in _VTT_ENTITY.sub("", line)
        unescaped = [_VTT_ENTITY.sub(lambda m: _ENTITIES[m[1]], line) for line in lines[1:]]
        cues.append((_ms(match.groups()[:4]), _ms(match.groups()[4:]), unescaped))
    _check_cues(cues)
    return cues


def test_srt() -> None:
    segments = [Segment(0.0, 2.5, "Hello there."), Segment(3.0, 5.25, "How are you?")]
    assert to_srt(segments) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n00:00:03,000 --> 00:00:05,250\nHow are you?\n"
    )


def test_vtt() -> None:
    segments = [Segment(0.0, 2.5, "Hello there."), Segment(3661.0, 3663.004, "Fish & <chips>")]
    assert to_vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
        "01:01:01.000 --> 01:01:03.004\nFish &amp; &lt;chips&gt;\n"
    )


def test_nothing_to_show() -> None:
    assert to_srt([]) == ""
    assert to_vtt([Segment(0, 1, "  ")]) == "WEBVTT\n"
    assert to_markdown([Segment(0, 1, "")]) == ""


def test_empty_texts_are_skipped_and_numbering_continues() -> None:
    cues = parse_srt(to_srt([Segment(0, 1, "One."), Segment(1, 2, " \n "), Segment(2, 3, "Two.")]))
    assert [c[2] for c in cues] == [["One."], ["Two."]]


def test_overlapping_and_backward_segments() -> None:
    segments = [
        Segment(10.0, 9.0, "Ends before it starts."),  # no usable end: 2 s, or until the next
        Segment(0.0, 5.0, "First."),
        Segment(3.0, 6.0, "Starts inside the first."),
        Segment(3.0, 4.0, "Same start."),
        Segment(20.0, 20.0, "No length."),
    ]
    cues = parse_srt(to_srt(segments))
    assert [(c[0], c[1]) for c in cues] == [
        (0, 3000),
        (3000, 4000),
        (4000, 6000),
        (10000, 12000),
        (20000, 22000),
    ]
    assert parse_vtt(to_vtt(segments))


def test_long_text_is_wrapped_and_split_in_time_proportion() -> None:
    words = [f"word{i:02d}" for i in range(60)]  # 7 characters each
    text = " ".join(words)
    cues = parse_srt(to_srt([Segment(10.0, 40.0, text)]))
    assert len(cues) > 1
    assert cues[0][0] == 10_000 and cues[-1][1] == 40_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cues))
    assert " ".join(" ".join(c[2]) for c in cues) == text
    per_char = [(end - start) / len("".join(lines)) for start, end, lines in cues]
    assert max(per_char) - min(per_char) < 5  # ms per character: the same for every cue


def test_a_word_longer_than_a_line_is_broken() -> None:
    cues = parse_srt(to_srt([Segment(0, 1, "x" * 100)]))
    assert "".join("".join(c[2]) for c in cues) == "x" * 100


def test_text_is_made_safe() -> None:
    cues = parse_srt(to_srt([Segment(0, 1, "a --> b\n\nc\td")]))
    assert cues[0][2] == ["a -> b c d"]


def test_times_past_99_hours_and_bad_numbers() -> None:
    srt = to_srt([Segment(-1.0, 0.5, "Before zero."), Segment(360_000.0, 360_001.0, "Late.")])
    assert "00:00:00,000 --> 00:00:00,500" in srt and "100:00:00,000 --> 100:00:01,000" in srt
    assert to_srt([Segment(math.nan, 1.0, "Not a time."), Segment(0, math.inf, "Nor this.")]) == ""


@dataclass
class EngineSegment:
    """Like an engine's segment: more fields than a Segment."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float | None = None


def test_any_segment_like_object() -> None:
    assert parse_vtt(to_vtt([EngineSegment(1, 2, "Fine.", -0.2)]))[0][2] == ["Fine."]


def test_markdown_headings_per_piece() -> None:
    segments = [Segment(1.0, 3.0, "Hello there."), Segment(12.2, 14, "Second."), Segment(65.5, 67, "Third.")]
    pieces = [Piece(0.5, 29.0), Piece(31.0, 60.0), Piece(61.0, 90.0)]
    assert to_markdown(segments, "headings", pieces=pieces) == (
        "## 00:00:00\n\nHello there. Second.\n\n## 00:01:01\n\nThird.\n"
    )
    assert to_markdown(segments) == "## 00:00:01\n\nHello there. Second. Third.\n"


def test_markdown_inline() -> None:
    segments = [Segment(65.9, 70, "Hello."), Segment(3725.0, 3726, "Later.")]
    assert to_markdown(segments, "inline") == "[00:01:05] Hello. [01:02:05] Later.\n"


def test_markdown_escapes_markup() -> None:
    text = to_markdown([Segment(0, 1, "# not a heading, *not bold* and [not](a link) <b>")], "headings")
    assert text == "## 00:00:00\n\n\\# not a heading, \\*not bold\\* and \\[not\\](a link) \\<b\\>\n"
    with pytest.raises(ValueError, match="style"):
        to_markdown([Segment(0, 1, "x")], "table")  # type: ignore[arg-type]


_WORDS = st.text(alphabet="ab cé&<>-\n\t.", min_size=0, max_size=120)
_SEGMENTS = st.lists(
    st.builds(
        lambda start, length, text: Segment(start, start + length, text),
        st.floats(min_value=0, max_value=20_000, allow_nan=False),
        st.floats(min_value=-5, max_value=90, allow_nan=False),
        _WORDS,
    ),
    max_size=25,
)


def _no_arrows(text: str) -> str:
    while "-->" in text:
        text = text.replace("-->", "->")
    return text


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(_SEGMENTS)
def test_any_segments_make_valid_subtitles(segments: list[Segment]) -> None:
    srt_cues = parse_srt(to_srt(segments))
    vtt_cues = parse_vtt(to_vtt(segments))
    assert srt_cues == vtt_cues
    # Every character of every text is shown, in time order (times before zero are zero; ties keep their
    # order).
    ordered = sorted(segments, key=lambda s: (max(0, round(s.start_s * 1000)), max(0, round(s.end_s * 1000))))
    expected = "".join(_no_arrows(" ".join(s.text.split())).replace(" ", "") for s in ordered)
    shown = "".join("".join(lines).replace(" ", "") for _, _, lines in srt_cues)
    assert shown == expected
