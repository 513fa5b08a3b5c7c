"""probe_audio and decode_pcm on real files made at test time, including hostile ones."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from pagemill.documents.audio.decode import (
    DURATION_SLACK_S,
    SAMPLE_RATE,
    AudioInfo,
    decode_pcm,
    iter_pcm,
    probe_audio,
)
from pagemill.errors import PagemillError
from tests.support import speech
from tests.support.speech import ESPEAK, SpeechFile

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")

SENTENCES = ["Good morning everyone.", "Let us begin the meeting."]
CONTAINERS = ["wav", "mp3", "m4a", "ogg", "flac", "webm", "mp4"]
RATES = [8000, 16000, 22050, 44100, 48000]
MAX_S = 3600.0


def _made(folder: Path, container: str, **kwargs: object) -> SpeechFile:
    name = f"{container}-{'-'.join(f'{k}{v}' for k, v in kwargs.items())}.{container}"
    return speech.make_speech(folder / name, SENTENCES, pause_ms=1000, container=container, **kwargs)  # type: ignore[arg-type]


def _code(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(PagemillError) as raised:
        call(*args, **kwargs)  # type: ignore[operator]
    return raised.value.code


def _level_db(pcm: np.ndarray, start_s: float, end_s: float) -> float:
    part = pcm[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)].astype(np.float64)
    return float(10 * np.log10(np.mean(part**2) + 1e-12))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("container", CONTAINERS)
def test_every_container_decodes_to_16k_mono(tmp_path: Path, container: str, rate: int) -> None:
    made = _made(tmp_path, container, rate=rate)
    info = probe_audio(made.path, MAX_S)
    assert info.container == container
    assert info.channels == 1
    assert info.duration_s is not None and abs(info.duration_s - made.duration_s) < 0.2
    pcm = decode_pcm(made.path, MAX_S)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(len(pcm) / SAMPLE_RATE - made.duration_s) <= 0.1
    assert float(np.abs(pcm).max()) <= 1.0
    # The content survived: the pause is far quieter than the sentences around it.
    (pause_start, pause_end), first = made.breaks[0], made.speech[0]
    assert _level_db(pcm, pause_start + 0.2, pause_end - 0.2) < _level_db(pcm, *first) - 30


def test_probe_reports_the_stream(tmp_path: Path) -> None:
    made = _made(tmp_path, "ogg", rate=16000)
    info = probe_audio(made.path, MAX_S)
    assert info == AudioInfo(
        duration_s=info.duration_s, codec="opus", sample_rate=48000, channels=1, container="ogg"
    )


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_video_containers_give_their_audio(tmp_path: Path, container: str) -> None:
    made = _made(tmp_path, container, rate=44100, video=True)
    info = probe_audio(made.path, MAX_S)
    assert info.has_video and info.container == container
    pcm = decode_pcm(made.path, MAX_S)
    assert abs(len(pcm) / SAMPLE_RATE - made.duration_s) <= 0.1


def test_iter_pcm_streams_what_decode_pcm_returns(tmp_path: Path) -> None:
    made = _made(tmp_path, "mp3", rate=44100)
    blocks = list(iter_pcm(made.path, MAX_S))
    assert len(blocks) > 1
    np.testing.assert_array_equal(np.concatenate(blocks), decode_pcm(made.path, MAX_S))


def test_channels_are_averaged(tmp_path: Path) -> None:
    """Stereo (and odd layouts FFmpeg cannot name) are averaged, so loud stereo never clips."""
    tone = (np.sin(np.arange(16000) * 0.05) * 0.8 * 32767).astype("<i2")
    for channels in (2, 9):
        interleaved = np.zeros((len(tone), channels), dtype="<i2")
        interleaved[:, 0] = tone
        interleaved[:, 1] = tone
        path = tmp_path / f"{channels}ch.wav"
        with wave.open(str(path), "wb") as writer:
            writer.setnchannels(channels)
            writer.setsampwidth(2)
            writer.setframerate(16000)
            writer.writeframes(interleaved.tobytes())
        pcm = decode_pcm(path, MAX_S)
        assert len(pcm) == 16000
        assert float(np.abs(pcm).max()) == pytest.approx(0.8 * 2 / channels, rel=0.01)


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    assert _code(probe_audio, path, MAX_S) == "EMPTY_FILE"
    assert _code(decode_pcm, path, MAX_S) == "EMPTY_FILE"


def test_a_wav_header_without_samples(tmp_path: Path) -> None:
    path = speech.make_empty_wav(tmp_path / "empty.wav")
    assert _code(probe_audio, path, MAX_S) == "CORRUPT_FILE"
    assert _code(decode_pcm, path, MAX_S) == "CORRUPT_FILE"


def test_text_named_mp3(tmp_path: Path) -> None:
    path = speech.make_text_file(tmp_path / "notes.mp3")
    assert _code(probe_audio, path, MAX_S) == "UNSUPPORTED_TYPE"
    assert _code(decode_pcm, path, MAX_S) == "UNSUPPORTED_TYPE"


def test_a_codec_ffmpeg_cannot_decode(tmp_path: Path) -> None:
    path = speech.make_unknown_codec_wav(tmp_path / "odd.wav")
    with pytest.raises(PagemillError) as raised:
        probe_audio(path, MAX_S)
    assert raised.value.code == "UNSUPPORTED_CODEC" and raised.value.http_status == 415
    assert _code(decode_pcm, path, MAX_S) == "UNSUPPORTED_CODEC"


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_a_video_without_audio(tmp_path: Path, suffix: str) -> None:
    path = speech.make_video_only(tmp_path / f"silent{suffix}")
    with pytest.raises(PagemillError) as raised:
        probe_audio(path, MAX_S)
    assert raised.value.code == "CORRUPT_FILE"
    assert raised.value.message == "The file has no audio track."
    assert _code(decode_pcm, path, MAX_S) == "CORRUPT_FILE"


@pytest.mark.parametrize("container", ["mp3", "flac", "ogg", "webm"])
def test_a_truncated_file_decodes_as_far_as_it_goes(tmp_path: Path, container: str) -> None:
    made = _made(tmp_path, container, rate=16000)
    cut = speech.make_truncated(made.path, tmp_path / f"cut.{container}", keep=0.6)
    pcm = decode_pcm(cut, MAX_S)
    assert 0.3 * made.duration_s < len(pcm) / SAMPLE_RATE < 0.8 * made.duration_s


def test_a_truncated_m4a_without_its_index(tmp_path: Path) -> None:
    """FFmpeg writes the moov box (the index) last: cut off, nothing says where the samples are."""
    made = _made(tmp_path, "m4a", rate=16000)
    cut = speech.make_truncated(made.path, tmp_path / "cut.m4a", keep=0.6)
    assert _code(probe_audio, cut, MAX_S) == "CORRUPT_FILE"
    assert _code(decode_pcm, cut, MAX_S) == "CORRUPT_FILE"


def test_a_header_claiming_100_hours(tmp_path: Path) -> None:
    """An RF64 header claims 100 h; the file holds 2 s. The probe believes the bytes, not the header."""
    path = speech.make_lying_wav(tmp_path / "liar.wav", claimed_hours=100, actual_s=2.0)
    info = probe_audio(path, MAX_S)
    assert info.duration_s is not None and info.duration_s == pytest.approx(2.0, abs=0.01)
    assert len(decode_pcm(path, MAX_S)) == 2 * SAMPLE_RATE


def test_a_declared_duration_over_the_limit(tmp_path: Path) -> None:
    made = _made(tmp_path, "flac", rate=16000)
    with pytest.raises(PagemillError) as raised:
        probe_audio(made.path, 2.0)
    assert raised.value.code == "AUDIO_TOO_LONG"
    assert raised.value.details["max_seconds"] == 2.0
    assert raised.value.details["seconds"] == pytest.approx(made.duration_s, abs=0.1)
    assert _code(decode_pcm, made.path, 2.0) == "AUDIO_TOO_LONG"


def test_the_limit_has_slack_for_codec_padding(tmp_path: Path) -> None:
    made = _made(tmp_path, "m4a", rate=8000)  # AAC pads the end by up to a frame (0.128 s at 8 kHz)
    probe_audio(made.path, made.duration_s)
    assert len(decode_pcm(made.path, made.duration_s)) <= (made.duration_s + DURATION_SLACK_S) * SAMPLE_RATE


def test_a_declared_flac_bomb_is_refused_by_the_probe(tmp_path: Path) -> None:
    path = speech.make_flac_bomb(tmp_path / "bomb.flac", hours=10, declare=True)
    assert path.stat().st_size < 200_000
    with pytest.raises(PagemillError) as raised:
        probe_audio(path, MAX_S)
    assert raised.value.code == "AUDIO_TOO_LONG"
    assert raised.value.details["seconds"] >= 36_000


def test_an_undeclared_flac_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    """STREAMINFO says nothing: the probe passes, and decoding stops once the output passes the limit."""
    path = speech.make_flac_bomb(tmp_path / "bomb.flac", hours=10, declare=False)
    info = probe_audio(path, MAX_S)
    assert info.duration_s is None
    limit_s = 120.0
    produced = 0
    with pytest.raises(PagemillError) as raised:
        for block in iter_pcm(path, limit_s):
            produced += len(block)
    assert raised.value.code == "AUDIO_TOO_LONG"
    # Everything up to the block that crossed the limit (one FLAC frame: 65,535 samples), nothing beyond.
    assert (limit_s + DURATION_SLACK_S) * SAMPLE_RATE - 65_535 <= produced
    assert produced <= (limit_s + DURATION_SLACK_S) * SAMPLE_RATE
    assert _code(decode_pcm, path, limit_s) == "AUDIO_TOO_LONG"


def test_an_impossible_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "rate.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(1_000_000_000)
        writer.writeframes(bytes(32000))
    assert _code(probe_audio, path, MAX_S) == "CORRUPT_FILE"
    assert _code(decode_pcm, path, MAX_S) == "CORRUPT_FILE"


def test_garbage_behind_a_valid_tag(tmp_path: Path) -> None:
    """An ID3 tag and then random bytes: not sniffed as audio; forced through the MP3 demuxer anyway,
    nothing (or only noise) decodes, and boundedly."""
    source = tmp_path / "noise.bin"
    source.write_bytes(np.random.default_rng(3).bytes(200_000))
    path = speech.with_id3(source, tmp_path / "garbage.mp3")
    assert _code(probe_audio, path, MAX_S) == "UNSUPPORTED_TYPE"
    try:
        pcm = decode_pcm(path, MAX_S, container="mp3")
    except PagemillError as exc:
        assert exc.code == "CORRUPT_FILE"
    else:
        assert len(pcm) < 60 * SAMPLE_RATE  # 200 kB cannot hold more than a minute of MP3 frames


def test_a_missing_file_is_not_the_clients_fault(tmp_path: Path) -> None:
    with pytest.raises(PagemillError) as raised:
        decode_pcm(tmp_path / "gone.wav", MAX_S, container="wav")
    assert raised.value.code == "PROCESSING_FAILED"
