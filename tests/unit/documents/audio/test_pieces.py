"""encode_piece / decode_piece round trips, and wav_bytes for HTTP transcription endpoints."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from pagemill.documents.audio.decode import SAMPLE_RATE, decode_pcm
from pagemill.documents.audio.pieces import decode_piece, encode_piece
from pagemill.engines.audio_base import wav_bytes
from pagemill.errors import PagemillError
from tests.support import speech
from tests.support.speech import ESPEAK

STEP = 1 / 32767  # one 16-bit step


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    made = speech.make_speech(tmp_path_factory.mktemp("pieces") / "s.wav", speech.SENTENCES[:4], pause_ms=500)
    return decode_pcm(made.path, 3600)


def test_round_trip_is_exact_at_16_bits(spoken: np.ndarray) -> None:
    blob = encode_piece(spoken)
    assert blob[:4] == b"fLaC"
    back = decode_piece(blob)
    assert back.dtype == np.float32 and back.shape == spoken.shape
    assert float(np.abs(back - spoken).max()) <= STEP * 1.01


def test_flac_is_smaller_than_wav_for_speech(spoken: np.ndarray) -> None:
    assert len(encode_piece(spoken)) < 0.6 * len(wav_bytes(spoken))


def test_out_of_range_samples_are_clipped() -> None:
    pcm = np.array([0.0, 1.5, -2.0, 0.5, -0.5], dtype=np.float32)
    back = decode_piece(encode_piece(pcm))
    np.testing.assert_allclose(back, [0.0, 1.0, -1.0, 0.5, -0.5], atol=STEP * 1.01)


def test_an_empty_piece() -> None:
    assert len(decode_piece(encode_piece(np.zeros(0, dtype=np.float32)))) == 0


def test_a_damaged_blob() -> None:
    with pytest.raises(PagemillError) as raised:
        decode_piece(b"fLaC" + bytes(100))
    assert raised.value.code == "CORRUPT_FILE"


def test_wav_bytes_is_16_bit_mono_wav() -> None:
    pcm = np.sin(np.arange(SAMPLE_RATE) * 0.01).astype(np.float32) * 0.5
    data = wav_bytes(pcm)
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, SAMPLE_RATE)
        assert reader.getnframes() == len(pcm)
    assert data[:4] == b"RIFF" and len(data) == 44 + 2 * len(pcm)
    np.testing.assert_allclose(decode_piece(data), pcm, atol=STEP * 1.01)  # WAV blobs are read too


def test_wav_bytes_at_another_rate() -> None:
    with wave.open(io.BytesIO(wav_bytes(np.zeros(800, dtype=np.float32), 8000))) as reader:
        assert reader.getframerate() == 8000 and reader.getnframes() == 800
