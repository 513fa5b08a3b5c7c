"""split_pieces on espeak-ng speech with known pauses: pieces are short enough, hold all the speech, and are
cut inside the pauses."""

from __future__ import annotations

import itertools
import time
import tracemalloc
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pagemill.documents.audio.decode import SAMPLE_RATE, decode_pcm, iter_pcm
from pagemill.documents.audio.split import PAD_S, Piece, iter_pieces, split_pieces
from tests.support import speech
from tests.support.speech import ESPEAK, SENTENCES, SpeechFile

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")

MAX_PIECE_S = 30.0
EDGE_S = 0.05  # a cut (or a trimmed piece's edge) must be this far inside a pause's silence


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("split")


@pytest.fixture(scope="module")
def clean(folder: Path) -> tuple[SpeechFile, np.ndarray]:
    """About 80 s of speech: 16 sentences with 2 s pauses (several cuts needed)."""
    made = speech.make_speech(folder / "clean.wav", SENTENCES * 2, pause_ms=2000)
    return made, decode_pcm(made.path, 3600)


@pytest.fixture(scope="module")
def noisy(folder: Path) -> tuple[SpeechFile, np.ndarray]:
    """The same speech with white noise at -30 dBFS and shorter (700 ms) pauses: about 51 s."""
    made = speech.make_speech(folder / "noisy.wav", SENTENCES * 2, pause_ms=700, noise_db=-30)
    return made, decode_pcm(made.path, 3600)


@pytest.fixture(scope="module")
def long(folder: Path) -> tuple[SpeechFile, np.ndarray]:
    made = speech.make_long_speech(folder / "long.wav", minutes=10)
    return made, decode_pcm(made.path, 3600)


def check_pieces(made: SpeechFile, pieces: list[Piece], max_piece_s: float = MAX_PIECE_S) -> None:
    """Pieces are ordered, short enough, hold every sentence whole, and every cut is inside a pause."""
    assert pieces
    for piece in pieces:
        assert 0 <= piece.start_s < piece.end_s <= made.duration_s + 1e-6
        assert piece.duration_s <= max_piece_s + 1e-9
        assert piece.speech
    for before, after in itertools.pairwise(pieces):
        assert before.end_s <= after.start_s
        # The cut lies between the two pieces' edges, and both edges are in the same pause's silence.
        assert any(
            low + EDGE_S <= before.end_s and after.start_s <= high - EDGE_S for low, high in made.breaks
        ), f"cut between {before.end_s:.2f} and {after.start_s:.2f} is not inside a pause"
    for start, end in made.speech:
        assert any(p.start_s <= start and end <= p.end_s for p in pieces), f"sentence {start:.2f}-{end:.2f}"


def test_clean_speech(clean: tuple[SpeechFile, np.ndarray]) -> None:
    made, pcm = clean
    pieces = split_pieces(pcm)
    assert len(pieces) >= 3
    check_pieces(made, pieces)


def test_noisy_speech_with_short_pauses(noisy: tuple[SpeechFile, np.ndarray]) -> None:
    made, pcm = noisy
    pieces = split_pieces(pcm)
    assert len(pieces) >= 2  # ~51 s
    check_pieces(made, pieces)


@pytest.mark.parametrize("max_piece_s", [5.0, 12.0])
def test_shorter_pieces(clean: tuple[SpeechFile, np.ndarray], max_piece_s: float) -> None:
    made, pcm = clean
    pieces = split_pieces(pcm, max_piece_s=max_piece_s)
    check_pieces(made, pieces, max_piece_s)


def test_trimmed_pieces_keep_a_margin(clean: tuple[SpeechFile, np.ndarray]) -> None:
    made, pcm = clean
    pieces = split_pieces(pcm)
    first_word, last_word = made.speech[0][0], made.speech[-1][1]
    assert pieces[0].start_s == pytest.approx(max(0.0, first_word - PAD_S), abs=0.02)
    assert pieces[-1].end_s == pytest.approx(min(made.duration_s, last_word + PAD_S), abs=0.02)


def test_ten_minutes(long: tuple[SpeechFile, np.ndarray]) -> None:
    made, pcm = long
    started = time.perf_counter()
    pieces = split_pieces(pcm)
    elapsed = time.perf_counter() - started
    assert len(pieces) >= 20
    check_pieces(made, pieces)
    assert elapsed < 5.0  # ~0.03 s measured; generous for a loaded CI machine


def test_other_sample_rates(folder: Path) -> None:
    made = speech.make_speech(folder / "8k.wav", SENTENCES[:6] * 2, pause_ms=1500, rate=8000)
    with wave.open(str(made.path)) as reader:
        raw = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    pcm = (raw / 32768.0).astype(np.float32)
    check_pieces(made, split_pieces(pcm, sample_rate=8000))


def test_short_recording_is_one_piece(folder: Path) -> None:
    made = speech.make_speech(folder / "short.wav", SENTENCES[:2], pause_ms=1000)
    pieces = split_pieces(decode_pcm(made.path, 3600))
    assert len(pieces) == 1
    check_pieces(made, pieces)


def test_silence_gives_one_piece_without_speech() -> None:
    assert split_pieces(np.zeros(45 * SAMPLE_RATE, dtype=np.float32)) == [Piece(0.0, 45.0, speech=False)]
    hiss = np.random.default_rng(0).normal(0, 10 ** (-60 / 20), 40 * SAMPLE_RATE).astype(np.float32)
    assert split_pieces(hiss) == [Piece(0.0, 40.0, speech=False)]


def test_nothing_gives_one_empty_piece() -> None:
    assert split_pieces(np.zeros(0, dtype=np.float32)) == [Piece(0.0, 0.0, speech=False)]


def test_long_silences_are_left_out(clean: tuple[SpeechFile, np.ndarray]) -> None:
    """20 s of silence before, 40 s in the middle: no piece is only silence, no speech is lost."""
    made, pcm = clean
    first, second = made.speech[0], made.speech[1]
    gap = np.zeros(40 * SAMPLE_RATE, dtype=np.float32)
    head = pcm[: int((first[1] + 0.5) * SAMPLE_RATE)]
    tail = pcm[int((second[0] - 0.5) * SAMPLE_RATE) : int((second[1] + 0.5) * SAMPLE_RATE)]
    joined = np.concatenate([np.zeros(20 * SAMPLE_RATE, dtype=np.float32), head, gap, tail])
    pieces = split_pieces(joined)
    assert len(pieces) == 2
    assert pieces[0].start_s == pytest.approx(20 + first[0] - PAD_S, abs=0.02)
    tail_start = 20 + len(head) / SAMPLE_RATE + 40
    assert pieces[1].start_s <= tail_start + 0.5 - 0.01 and pieces[1].end_s >= joined.size / SAMPLE_RATE - 0.6


def test_sound_without_pauses_is_cut_anyway() -> None:
    """75 s of loud noise (music, a crowd): forced cuts, nothing longer than the limit, nothing dropped."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, 75 * SAMPLE_RATE) * (1 + 0.5 * np.sin(np.arange(75 * SAMPLE_RATE) / 3000))
    pieces = split_pieces(noise.astype(np.float32))
    assert all(p.duration_s <= MAX_PIECE_S for p in pieces)
    assert pieces[0].start_s == 0 and pieces[-1].end_s == 75.0
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(pieces))


def test_piece_samples() -> None:
    piece = Piece(1.5, 2.25)
    assert piece.samples() == slice(24000, 36000)
    assert piece.samples(8000) == slice(12000, 18000)
    assert piece.duration_s == 0.75


def _stream(pcm: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``pcm`` in blocks of ``size`` samples, each a new array (as a decoder hands them out)."""
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size].copy()


@pytest.mark.parametrize("block", [1000, 32768])
@pytest.mark.parametrize("recording", ["clean", "noisy", "long"])
def test_streaming_gives_the_same_pieces(request: pytest.FixtureRequest, recording: str, block: int) -> None:
    _made, pcm = request.getfixturevalue(recording)
    streamed = list(iter_pieces(_stream(pcm, block)))
    assert [piece for piece, _ in streamed] == split_pieces(pcm)
    for piece, samples in streamed:
        np.testing.assert_array_equal(samples, pcm[piece.samples()])


def test_streaming_from_the_decoder(clean: tuple[SpeechFile, np.ndarray]) -> None:
    made, pcm = clean
    assert [piece for piece, _ in iter_pieces(iter_pcm(made.path, 3600))] == split_pieces(pcm)


def test_streaming_silence_and_noise() -> None:
    silence = np.zeros(45 * SAMPLE_RATE, dtype=np.float32)
    [(piece, samples)] = list(iter_pieces(_stream(silence, 4096)))
    assert piece == Piece(0.0, 45.0, speech=False) and len(samples) == 0
    noise = np.random.default_rng(2).normal(0, 0.1, 70 * SAMPLE_RATE).astype(np.float32)
    assert [p for p, _ in iter_pieces(_stream(noise, 4096))] == split_pieces(noise)
    [(piece, samples)] = list(iter_pieces([]))
    assert piece == Piece(0.0, 0.0, speech=False) and len(samples) == 0


def test_streaming_holds_about_a_minute(long: tuple[SpeechFile, np.ndarray]) -> None:
    """Ten minutes (38 MB of float32) stream through in a few MB: a piece, its lookahead, and the frame
    levels (100 per second)."""
    _made, pcm = long
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_pieces(_stream(pcm, SAMPLE_RATE)))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count >= 20
    assert peak < 12 * 1024 * 1024, peak
