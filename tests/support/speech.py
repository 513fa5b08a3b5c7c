"""Recordings with known content, made at test time: espeak-ng speech with known pauses, in any container.

:func:`make_speech` synthesises sentences with SSML breaks between them (``espeak-ng -m``), measures where the
breaks really are (espeak writes digital silence there), optionally mixes in white noise, and writes the
result with PyAV into the container asked for. :func:`make_long_speech` builds long recordings cheaply by
repeating a few synthesised sentences. The hostile makers write files a service must refuse or survive:
an empty WAV, a truncated file, a header that claims 100 hours, text named .mp3, a FLAC "bomb" (hours of
silence in a few hundred kilobytes), an unknown codec, a video without audio.

Containers the pinned PyAV wheel writes (a missing encoder raises ContainerUnavailable): wav (pcm_s16le), mp3
(libmp3lame), m4a (aac in the ``ipod`` muxer), ogg (libopus), flac, webm (libopus, libvpx video), mkv
(flac), mp4 (aac, libx264 or mpeg4 video), aac (ADTS).
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

ESPEAK: Final = shutil.which("espeak-ng")
ESPEAK_RATE: Final = 22050
VOICE: Final = ("-v", "en-us", "-s", "130", "-g", "2")

SENTENCES: Final = [
    "The quick brown fox jumps over the lazy dog.",
    "Revenue grew in the northern region while costs stayed flat.",
    "Please send the quarterly report by Friday afternoon.",
    "The meeting will start at nine in the main conference room.",
    "We should hire two engineers before the end of the year.",
    "Coffee supplies are running low on the third floor.",
    "The new office in Berlin opens next spring.",
    "Remember to back up the database every night.",
]

# container: (muxer, audio encoders to try, rates the encoder takes (None: any), video encoders to try)
_WRITERS: Final[dict[str, tuple[str, tuple[str, ...], tuple[int, ...] | None, tuple[str, ...]]]] = {
    "wav": ("wav", ("pcm_s16le",), None, ()),
    "mp3": ("mp3", ("libmp3lame",), None, ()),
    "m4a": ("ipod", ("aac",), None, ()),
    "aac": ("adts", ("aac",), None, ()),
    "ogg": ("ogg", ("libopus", "opus"), (8000, 12000, 16000, 24000, 48000), ()),
    "flac": ("flac", ("flac",), None, ()),
    "webm": ("webm", ("libopus", "opus"), (8000, 12000, 16000, 24000, 48000), ("libvpx", "libvpx-vp9")),
    "mkv": ("matroska", ("flac",), None, ("libx264", "mpeg4")),
    "mp4": ("mp4", ("aac",), None, ("libx264", "mpeg4")),
}

# Test files need not be good, only quick to make.
_FAST_OPTIONS: Final[dict[str, dict[str, str]]] = {
    "aac": {"aac_coder": "fast"},
    "libmp3lame": {"compression_level": "9"},
    "libx264": {"preset": "ultrafast"},
    "libvpx": {"cpu-used": "8"},
}

Pcm = npt.NDArray[np.float32]


class ContainerUnavailable(Exception):
    """PyAV's FFmpeg has no encoder for this container here. The pinned PyAV wheel ships every encoder the
    tests use, so a test that meets this fails: the wheel (or its FFmpeg build) changed."""


@dataclass
class SpeechFile:
    """A made recording and what is known about it (times in seconds from the start of the file)."""

    path: Path
    sentences: list[str]
    rate: int
    container: str
    duration_s: float
    breaks: list[tuple[float, float]] = field(default_factory=list)
    """The silent intervals between sentences (digital silence before any noise is mixed in)."""
    speech: list[tuple[float, float]] = field(default_factory=list)
    """Each sentence's interval, from its first to its last non-silent sample."""

    @property
    def text(self) -> str:
        """The spoken text, sentences joined by spaces."""
        return " ".join(self.sentences)


def synthesize(sentences: list[str], *, pause_ms: int = 2000) -> tuple[Pcm, list[tuple[int, int]]]:
    """espeak-ng speech at 22,050 Hz with SSML breaks, and each sentence's (first, last+1) sample (cached:
    a test matrix speaks the same sentences once)."""
    pcm, spans = _synthesize(tuple(sentences), pause_ms)
    return pcm.copy(), list(spans)


@functools.lru_cache(maxsize=16)
def _synthesize(sentences: tuple[str, ...], pause_ms: int) -> tuple[Pcm, list[tuple[int, int]]]:
    if ESPEAK is None:
        raise ContainerUnavailable("espeak-ng is not installed")
    ssml = f'<break time="{pause_ms}ms"/>'.join(escape(s) for s in sentences)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        # US English at 130 words a minute with short gaps between words: the clearest of espeak's voices
        # for Whisper (tiny.en's word error rate on its default voice is several times higher).
        command = [ESPEAK, *VOICE, "-m", "-w", str(out), f"<speak>{ssml}</speak>"]
        subprocess.run(command, check=True, timeout=60)
        with wave.open(str(out)) as reader:
            assert reader.getframerate() == ESPEAK_RATE and reader.getnchannels() == 1
            raw = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    pcm = (raw.astype(np.float32) / 32768.0).astype(np.float32)
    return pcm, _sentence_spans(raw, len(sentences), pause_ms)


def _sentence_spans(raw: npt.NDArray[np.int16], count: int, pause_ms: int) -> list[tuple[int, int]]:
    """Sentence spans between the long runs of digital silence espeak writes for the breaks."""
    loud = np.flatnonzero(raw != 0)
    if count == 0 or not len(loud):
        return []
    gaps = np.flatnonzero(np.diff(loud) > ESPEAK_RATE * pause_ms / 1000 * 0.6)
    if len(gaps) != count - 1:
        raise AssertionError(f"espeak made {len(gaps) + 1} sentences, not {count}")
    starts = [int(loud[0])] + [int(loud[g + 1]) for g in gaps]
    ends = [int(loud[g]) + 1 for g in gaps] + [int(loud[-1]) + 1]
    return list(zip(starts, ends, strict=True))


def make_speech(
    path: Path,
    sentences: list[str] | None = None,
    *,
    pause_ms: int = 2000,
    rate: int = 16000,
    container: str = "wav",
    noise_db: float | None = None,
    video: bool = False,
    seed: int = 0,
) -> SpeechFile:
    """Speak ``sentences`` with ``pause_ms`` breaks and write them at ``rate`` Hz into ``container``.

    ``noise_db``: white noise of that RMS level (dBFS, e.g. -40) mixed in. ``video``: add a small video track
    (mp4, webm, mkv). Raises ContainerUnavailable when this FFmpeg cannot write the container.
    """
    sentences = list(sentences if sentences is not None else SENTENCES[:3])
    pcm, spans = synthesize(sentences, pause_ms=pause_ms)
    return _finish(
        path,
        sentences,
        pcm,
        spans,
        source_rate=ESPEAK_RATE,
        rate=rate,
        container=container,
        noise_db=noise_db,
        video=video,
        seed=seed,
    )


def make_long_speech(
    path: Path,
    minutes: float = 10,
    *,
    pause_ms: int = 2000,
    rate: int = 16000,
    container: str = "wav",
    noise_db: float | None = None,
) -> SpeechFile:
    """A recording of ``minutes``: :data:`SENTENCES` synthesised once, repeated with ``pause_ms`` pauses
    (built at ``rate`` from resampled clips, so a long file costs little more than writing it)."""
    pcm, spans = synthesize(SENTENCES, pause_ms=pause_ms)
    clips = [resample_linear(pcm[a:b], ESPEAK_RATE, rate) for a, b in spans]
    pause = np.zeros(int(rate * pause_ms / 1000), dtype=np.float32)
    target = int(minutes * 60 * rate)
    parts: list[Pcm] = []
    out_spans: list[tuple[int, int]] = []
    sentences: list[str] = []
    position = 0
    while position < target:
        index = len(out_spans) % len(clips)
        if parts:
            parts.append(pause)
            position += len(pause)
        parts.append(clips[index])
        out_spans.append((position, position + len(clips[index])))
        sentences.append(SENTENCES[index])
        position += len(clips[index])
    parts.append(np.zeros(rate // 2, dtype=np.float32))
    signal = np.concatenate(parts)
    return _finish(
        path,
        sentences,
        signal,
        out_spans,
        source_rate=rate,
        rate=rate,
        container=container,
        noise_db=noise_db,
        video=False,
        seed=0,
    )


def _finish(
    path: Path,
    sentences: list[str],
    pcm: Pcm,
    spans: list[tuple[int, int]],
    *,
    source_rate: int,
    rate: int,
    container: str,
    noise_db: float | None,
    video: bool,
    seed: int,
) -> SpeechFile:
    signal = resample_linear(pcm, source_rate, rate)
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        noise = rng.normal(0.0, 10 ** (noise_db / 20), len(signal)).astype(np.float32)
        signal = np.clip(signal + noise, -1.0, 1.0).astype(np.float32)
    write_audio(path, signal, rate, container, video=video)
    speech = [(a / source_rate, b / source_rate) for a, b in spans]
    breaks = [(speech[i][1], speech[i + 1][0]) for i in range(len(speech) - 1)]
    return SpeechFile(path, sentences, rate, container, len(signal) / rate, breaks, speech)


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation (apostrophes kept: "we'll" is one word)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference's word count."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref_word != hyp_word))
    return row[len(hyp)] / max(len(ref), 1)


def resample_linear(pcm: Pcm, source: int, target: int) -> Pcm:
    """Linear interpolation to another rate (independent of the code under test; fine for test speech)."""
    if source == target:
        return pcm
    count = round(len(pcm) * target / source)
    positions = np.arange(count, dtype=np.float64) * (source / target)
    return np.interp(positions, np.arange(len(pcm)), pcm).astype(np.float32)


def _encoders(container: str, video: bool) -> tuple[str, str, str | None]:
    muxer, audio_codecs, _rates, video_codecs = _WRITERS[container]
    audio = next((c for c in audio_codecs if _can_encode(c)), None)
    if audio is None:
        raise ContainerUnavailable(f"no encoder for {container}: tried {', '.join(audio_codecs)}")
    if not video:
        return muxer, audio, None
    picture = next((c for c in video_codecs if _can_encode(c)), None)
    if picture is None:
        raise ContainerUnavailable(f"no video encoder for {container}")
    return muxer, audio, picture


def _can_encode(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def write_audio(path: Path, pcm: Pcm, rate: int, container: str, *, video: bool = False) -> None:
    """Write mono float32 ``pcm`` at ``rate`` into ``container`` with PyAV (pts set, so the muxer records
    the encoder's priming and FFmpeg trims it again on decoding)."""
    muxer, audio_codec, video_codec = _encoders(container, video)
    allowed = _WRITERS[container][2]
    encode_rate = rate if allowed is None or rate in allowed else 48000
    with av.open(str(path), "w", format=muxer) as output:
        stream = output.add_stream(
            audio_codec, rate=encode_rate, layout="mono", options=_FAST_OPTIONS.get(audio_codec, {})
        )
        assert isinstance(stream, AudioStream)
        context = stream.codec_context
        picture = None
        if video_codec is not None:
            picture = _video_stream(output, video_codec, 5)
        s16 = (np.clip(pcm, -1.0, 1.0) * 32767).round().astype(np.int16)
        frame = av.AudioFrame.from_ndarray(s16.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(
            format=context.format.name if context.format else "s16",
            layout="mono",
            rate=encode_rate,
            frame_size=context.frame_size or 4096,
        )
        pts = 0
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            chunk.pts, chunk.time_base = pts, Fraction(1, encode_rate)
            pts += chunk.samples
            output.mux(stream.encode(chunk))
        output.mux(stream.encode(None))
        if picture is not None:
            for index in range(math.ceil(len(pcm) / rate * 5)):
                image = np.full((48, 64, 3), (index * 7) % 256, dtype=np.uint8)
                output.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            output.mux(picture.encode(None))


def _video_stream(output: OutputContainer, codec: str, fps: int) -> VideoStream:
    """A tiny 64x48 video track (test files need one, not a good one)."""
    picture = output.add_stream(codec, rate=fps, options=_FAST_OPTIONS.get(codec, {}))
    assert isinstance(picture, VideoStream)
    picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
    return picture


# --- hostile files ---------------------------------------------------------------------------------------


def _wav_header(rate: int, data_bytes: int, *, channels: int = 1, bits: int = 16, tag: int = 1) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    return (
        b"RIFF" + struct.pack("<I", (36 + data_bytes) & 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", data_bytes & 0xFFFFFFFF)
    )  # fmt: skip


def make_empty_wav(path: Path) -> Path:
    """A valid WAV header (16 kHz, 16-bit mono) with no samples at all."""
    path.write_bytes(_wav_header(16000, 0))
    return path


def make_truncated(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of ``source``'s bytes (an upload cut off midway)."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_lying_wav(
    path: Path, *, claimed_hours: float = 100, actual_s: float = 2.0, rate: int = 16000
) -> Path:
    """An RF64 WAV whose ds64 header claims ``claimed_hours`` of 16-bit mono audio; it holds ``actual_s``."""
    samples = (np.sin(np.arange(int(actual_s * rate)) * 0.05) * 8000).astype("<i2").tobytes()
    claimed = int(claimed_hours * 3600 * rate) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    ds64 = struct.pack("<QQQI", claimed + 80, claimed, claimed // 2, 0)
    path.write_bytes(
        b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"ds64" + struct.pack("<I", len(ds64)) + ds64
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + samples
    )  # fmt: skip
    return path


def make_text_file(path: Path) -> Path:
    """Plain text, whatever the name (e.g. ``notes.mp3``)."""
    path.write_text("These are meeting notes, not a recording.\n" * 50)
    return path


def make_unknown_codec_wav(path: Path) -> Path:
    """A WAV whose format tag names no codec FFmpeg knows (0x7777)."""
    data = bytes(16000)
    path.write_bytes(_wav_header(8000, len(data), tag=0x7777) + data)
    return path


def make_video_only(path: Path) -> Path:
    """An MP4 (or WebM, by suffix) with a video track and no audio."""
    muxer = "webm" if path.suffix == ".webm" else "mp4"
    codecs = ("libvpx",) if muxer == "webm" else ("libx264", "mpeg4")
    codec = next((c for c in codecs if _can_encode(c)), None)
    if codec is None:
        raise ContainerUnavailable(f"no video encoder for {muxer}")
    with av.open(str(path), "w", format=muxer) as output:
        picture = _video_stream(output, codec, 10)
        for index in range(20):
            image = np.full((48, 64, 3), index * 10, dtype=np.uint8)
            output.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        output.mux(picture.encode(None))
    return path


_FLAC_RATE_CODES: Final = {8000: 0b0100, 16000: 0b0101, 22050: 0b0110, 24000: 0b0111, 32000: 0b1000,
                           44100: 0b1001, 48000: 0b1010}  # fmt: skip
_FLAC_BLOCK: Final = 65535  # the largest FLAC block


def make_flac_bomb(path: Path, *, hours: float = 10, rate: int = 16000, declare: bool = True) -> Path:
    """A FLAC of ``hours`` of digital silence that is tiny on disk: 65,535-sample frames of one CONSTANT
    subframe each (about 12 bytes for 4 seconds at 16 kHz, a ratio of ~10,000:1).

    ``declare``: STREAMINFO states the true length (a probe sees it); otherwise the length is "unknown" and
    only the decoder can find out.
    """
    frames = math.ceil(hours * 3600 * rate / _FLAC_BLOCK)
    total = frames * _FLAC_BLOCK if declare else 0
    info = struct.pack(">HH", _FLAC_BLOCK, _FLAC_BLOCK) + bytes(6)  # block sizes; frame sizes unknown
    info += struct.pack(">Q", (rate << 44) | (0 << 41) | (15 << 36) | total) + bytes(16)  # mono, 16 bits
    body = [b"fLaC", bytes([0x80, 0, 0, len(info)]), info]
    rate_code = _FLAC_RATE_CODES.get(rate, 0)
    for number in range(frames):
        header = bytes([0xFF, 0xF8, (0b0111 << 4) | rate_code, 0b0000_100_0])
        header += chr(number).encode("utf-8", "surrogatepass") + struct.pack(">H", _FLAC_BLOCK - 1)
        header += bytes([_crc8(header)])
        frame = header + b"\x00\x00\x00"  # CONSTANT subframe, value 0
        body.append(frame + struct.pack(">H", _crc16(frame)))
    path.write_bytes(b"".join(body))
    return path


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def with_id3(source: Path, path: Path) -> Path:
    """``source`` behind a small ID3v2.4 tag (a title frame), as some taggers write even before FLAC."""
    title = b"\x03Test recording"
    frame = b"TIT2" + _syncsafe(len(title)) + b"\x00\x00" + title
    path.write_bytes(b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame + source.read_bytes())
    return path


def _syncsafe(value: int) -> bytes:
    return bytes([(value >> 21) & 0x7F, (value >> 14) & 0x7F, (value >> 7) & 0x7F, value & 0x7F])


def strip_id3(source: Path, path: Path) -> Path:
    """``source`` without its leading ID3v2 tag (a bare MPEG frame stream)."""
    data = source.read_bytes()
    if data[:3] == b"ID3":
        size = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
        data = data[size:]
    path.write_bytes(data)
    return path
