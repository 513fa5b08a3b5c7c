"""Speech engines without a model or a server: WAV encoding and sample cleaning, language codes,
transcripts, and parsing of OpenAI-style answers. The OpenAI-compatible engine's HTTP behaviour is in
test_whisper_openai_engine.py, faster-whisper in test_faster_whisper_engine.py."""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
import pytest

from pagemill.engines.audio_base import Segment, Transcript, Word, as_pcm, language_code, wav_bytes
from pagemill.engines.whisper_openai import parse_transcription
from tests.unit.engines.audio_helpers import verbose

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
