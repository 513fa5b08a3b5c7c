"""Check and decode a recording with FFmpeg (PyAV): 16 kHz mono float32, bounded whatever the file claims.

Two steps, as for documents:

- :func:`probe_audio` reads the header (and decodes the first packets) to refuse a file early and cheaply:
  no audio track, a codec FFmpeg cannot decode, a declared duration over the limit, no audio data at all.
  It runs in the sandboxed probe child (:mod:`pagemill.documents.probe`).
- :func:`decode_pcm` (or :func:`iter_pcm`, which streams) decodes the audio stream frame by frame and never
  trusts the header: it counts the samples it produces and stops with AudioTooLong as soon as they pass the
  limit, so a file that is tiny on disk and hours long when decoded (a FLAC of silence) costs at most
  ``max_seconds`` of output. Damaged data is decoded as far as it can be; CorruptFile only when nothing is.

FFmpeg is never left to guess: the container is sniffed from content (:func:`sniff_audio`) and the matching
demuxer is forced, so a hostile file cannot be read as a playlist or a concat list, and only the ``file``
protocol is allowed (no nested opens of URLs). Video streams of MP4/WebM/Matroska files are discarded in the
demuxer: their packets are never read, let alone decoded.

Decoded audio is 230 MB per hour (float32 at 16 kHz): stream long recordings with :func:`iter_pcm` and
:func:`~pagemill.documents.audio.split.iter_pieces`. Speed, measured on 10-minute recordings on one shared
core: 550-1,300 times real time for MP3, AAC and FLAC, 290-420 for Opus (libopus itself is most of it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer

from pagemill.documents.audio.formats import DEMUXERS, SNIFF_BYTES, sniff_audio
from pagemill.errors import (
    AudioTooLong,
    CorruptFile,
    EmptyFile,
    ProcessingError,
    UnsupportedCodec,
    UnsupportedType,
)

SAMPLE_RATE: Final = 16_000
"""Rate of every decoded recording (what Whisper models read)."""

DURATION_SLACK_S: Final = 0.5
"""Tolerance over ``max_seconds``: codec padding (AAC, MP3) makes a recording of exactly the limit decode a
few milliseconds longer, which must not refuse it."""

_MIN_RATE: Final = 1_000
_MAX_RATE: Final = 768_000  # the highest rate any real recorder writes (DXD is 352.8 kHz)
_MAX_CHANNELS: Final = 64
_MAX_CONSECUTIVE_ERRORS: Final = 100  # packets in a row that fail to decode: the rest is garbage
_BATCH_SAMPLES: Final = 32_768  # input samples resampled per call (under a second at 44.1 kHz)
_PROBE_PACKETS: Final = 64  # packets the probe demuxes to find one decodable frame
_OPEN_TIMEOUT_S: Final = 30.0  # FFmpeg's stream analysis at open; reads are bounded by the file's size
_OPEN_OPTIONS: Final = {"protocol_whitelist": "file"}
# FFmpeg's sample formats (without the planar "p"), and the full scale of the integer ones (u8 is offset
# binary around 128).
_SAMPLE_DTYPES: Final = {"u8": "u1", "s16": "<i2", "s32": "<i4", "s64": "<i8", "flt": "<f4", "dbl": "<f8"}
_INTEGER_SCALES: Final = {"u1": 128.0, "i2": 32768.0, "i4": 2147483648.0, "i8": 9223372036854775808.0}

Pcm = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a recording's header says about its audio track (after :func:`probe_audio`'s checks)."""

    duration_s: float | None
    """Declared duration; None when the container does not say (live WebM, raw streams)."""
    codec: str
    """FFmpeg's decoder name, e.g. ``aac``, ``mp3float``, ``opus``, ``pcm_s16le``."""
    sample_rate: int
    channels: int
    container: str
    """What :func:`sniff_audio` recognised: ``wav``, ``mp3``, ``m4a``, ``mp4``, ``webm``, ..."""
    has_video: bool = False
    """True when the container also holds a video track (which is never decoded)."""


def probe_audio(path: Path, max_seconds: float, *, container: str | None = None) -> AudioInfo:
    """Check a recording's header and its first packets; return what it declares or raise a typed error.

    ``container`` is what :func:`sniff_audio` said (sniffed here when not given). Raises EmptyFile (no
    bytes), UnsupportedType (not a recording this service reads), CorruptFile (unreadable container, no
    audio track, no audio data, impossible parameters), UnsupportedCodec (FFmpeg cannot decode the audio)
    or AudioTooLong (the declared duration is over ``max_seconds``). A header may lie about the duration;
    :func:`decode_pcm` enforces the limit on the decoded samples.
    """
    container = container or _sniff(path)
    with _open(path, container) as input_:
        stream = _audio_stream(input_)
        codec, sample_rate, channels = _check_codec(stream)
        duration = _declared_duration(input_, stream)
        if duration is not None and duration > max_seconds + DURATION_SLACK_S:
            raise AudioTooLong(
                f"The recording is {duration:.0f} seconds long; at most {max_seconds:.0f} are allowed.",
                seconds=round(duration, 1),
                max_seconds=max_seconds,
            )
        if not _decodes_something(input_, stream):
            raise CorruptFile("The recording holds no decodable audio.", reason="no_audio_data")
        return AudioInfo(
            duration_s=duration,
            codec=codec,
            sample_rate=sample_rate,
            channels=channels,
            container=container,
            has_video=any(s.type == "video" for s in input_.streams),
        )


def decode_pcm(path: Path, max_seconds: float, *, container: str | None = None) -> Pcm:
    """The recording's audio track as 16 kHz mono float32 samples in [-1, 1].

    Raises AudioTooLong as soon as the decoded audio passes ``max_seconds`` (plus
    :data:`DURATION_SLACK_S`), whatever the header said; CorruptFile if nothing decodes (a truncated or
    damaged file decodes as far as it can); and the errors of :func:`probe_audio` for unreadable files.
    Memory: the output (230 MB per hour), preallocated from the declared duration; for long recordings
    prefer :func:`iter_pcm` with :func:`~pagemill.documents.audio.split.iter_pieces`.
    """
    limit = _limit_samples(max_seconds)
    out = np.zeros(0, dtype=np.float32)
    filled = 0
    overflow: list[Pcm] = []  # blocks past the declared length (or all of them, when none is declared)
    for block in _pcm_blocks(path, max_seconds, container, sizing=True):
        if isinstance(block, int):  # the declared length: one buffer of the right size, no regrowing
            out = np.empty(min(limit, block), dtype=np.float32)
        elif not overflow and filled + len(block) <= len(out):
            out[filled : filled + len(block)] = block
            filled += len(block)
        else:
            overflow.append(block)
    if overflow:
        return np.concatenate([out[:filled], *overflow])
    return out[:filled].copy() if filled < len(out) * 0.9 else out[:filled]


def iter_pcm(path: Path, max_seconds: float, *, container: str | None = None) -> Iterator[Pcm]:
    """Decode like :func:`decode_pcm`, yielding 16 kHz mono float32 blocks (new arrays, up to about two
    seconds each) as they come; the same errors, AudioTooLong before yielding samples past the limit."""
    for block in _pcm_blocks(path, max_seconds, container, sizing=False):
        if not isinstance(block, int):
            yield block


def _pcm_blocks(
    path: Path, max_seconds: float, container: str | None, *, sizing: bool
) -> Iterator[Pcm | int]:
    limit = _limit_samples(max_seconds)
    container = container or _sniff(path)
    total = 0
    with _open(path, container) as input_:
        stream = _audio_stream(input_)
        _check_codec(stream)
        declared = _declared_duration(input_, stream)
        if sizing and declared is not None:
            yield math.ceil(declared * SAMPLE_RATE) + SAMPLE_RATE // 10
        for block in _resampled(_frames(input_, stream)):
            total += len(block)
            if total > limit:
                raise _too_long(max_seconds, declared, total)
            yield block
    if total == 0:
        raise CorruptFile("The recording holds no decodable audio.", reason="no_audio_data")


def _resampled(frames: Iterator[AudioFrame]) -> Iterator[Pcm]:
    """16 kHz mono blocks of decoded frames (a stream may change its rate midway: concatenated ADTS)."""
    resampler: _Resampler | None = None
    for frame in frames:
        if resampler is None or frame.sample_rate != resampler.rate:
            if resampler is not None:
                yield from resampler.flush()
            _check_rate(frame.sample_rate, len(frame.layout.channels))
            resampler = _Resampler(frame.sample_rate)
        yield from resampler.resample(_to_mono(frame))
    if resampler is not None:
        yield from resampler.flush()


class _Resampler:
    """Mono float32 at any rate to 16 kHz (FFmpeg's swresample), in batches of about :data:`_BATCH_SAMPLES`
    input samples (one call per packet costs more in Python than in swresample); a pass-through at 16 kHz."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler = (
            None if rate == SAMPLE_RATE else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        )
        self._pending: list[Pcm] = []
        self._pending_samples = 0

    def resample(self, mono: Pcm) -> Iterator[Pcm]:
        if self._resampler is None:
            yield np.clip(mono, -1.0, 1.0, out=mono)
            return
        self._pending.append(mono)
        self._pending_samples += len(mono)
        if self._pending_samples >= _BATCH_SAMPLES:
            yield from self._convert_pending()

    def flush(self) -> Iterator[Pcm]:
        if self._resampler is not None:
            yield from self._convert_pending()
            yield from self._convert(None)

    def _convert_pending(self) -> Iterator[Pcm]:
        if not self._pending:
            return
        batch = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_samples = [], 0
        frame = AudioFrame.from_ndarray(batch.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate
        yield from self._convert(frame)

    def _convert(self, frame: AudioFrame | None) -> Iterator[Pcm]:
        assert self._resampler is not None
        try:
            frames = self._resampler.resample(frame)
        except (av.error.FFmpegError, ValueError):
            raise CorruptFile("The recording's audio cannot be converted.", reason="resample") from None
        for out in frames:
            yield np.clip(out.to_ndarray()[0], -1.0, 1.0, dtype=np.float32)


def _to_mono(frame: AudioFrame) -> Pcm:
    """The frame's samples as float32 (full scale 1.0), channels averaged: any sample format, any layout
    (FFmpeg's own downmix adds channels up, and refuses layouts it cannot name). Not clipped yet."""
    channels = max(1, len(frame.layout.channels))
    samples = frame.samples
    dtype = np.dtype(_SAMPLE_DTYPES[frame.format.name.rstrip("p")])
    if frame.format.is_planar:
        planes = [
            np.frombuffer(memoryview(frame.planes[c]), dtype=dtype, count=samples) for c in range(channels)
        ]
        data = planes[0] if channels == 1 else np.stack(planes, axis=1)
    else:
        packed = np.frombuffer(memoryview(frame.planes[0]), dtype=dtype, count=samples * channels)
        data = packed.reshape(samples, channels)
    if channels > 1:
        data = data.mean(axis=1, dtype=np.float64 if dtype.kind in "iu" else dtype)
    elif data.ndim > 1:
        data = data[:, 0]
    if dtype.kind == "f":
        return data.astype(np.float32)  # a copy: the frame's buffer is FFmpeg's to reuse
    offset = 128.0 if dtype == np.uint8 else 0.0
    result: Pcm = ((data - offset) * (1.0 / _INTEGER_SCALES[dtype.str[1:]])).astype(np.float32)
    return result


def _frames(
    input_: InputContainer, stream: AudioStream, max_packets: int | None = None
) -> Iterator[AudioFrame]:
    """Decoded frames of ``stream`` (from at most ``max_packets`` packets), skipping packets that fail to
    decode and stopping where the container stops making sense (truncation, garbage): what decoded before
    that is kept."""
    packets = input_.demux(stream)
    errors = 0
    count = 0
    while max_packets is None or count < max_packets:
        count += 1
        try:
            packet = next(packets)
        except StopIteration:
            break
        except (av.error.FFmpegError, OSError, ValueError):
            # A truncated or damaged container: flush what the decoder holds and stop.
            yield from _flush(stream)
            return
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError):
            errors += 1
            if errors > _MAX_CONSECUTIVE_ERRORS:
                return
            continue
        errors = 0
        for frame in frames:
            if isinstance(frame, AudioFrame) and frame.samples > 0:
                yield frame


def _flush(stream: AudioStream) -> Iterator[AudioFrame]:
    try:
        frames = stream.codec_context.decode(None)
    except (av.error.FFmpegError, ValueError):
        frames = []
    yield from (f for f in frames if isinstance(f, AudioFrame) and f.samples > 0)


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError:
        raise ProcessingError("The stored recording could not be read.") from None
    if not head:
        raise EmptyFile()
    container = sniff_audio(head)
    if container is None:
        raise UnsupportedType("The file is not a recording in a supported format.", reason="audio_format")
    return container


@contextmanager
def _open(path: Path, container: str) -> Iterator[InputContainer]:
    """Open ``path`` with the demuxer of ``container`` only, turning open failures into Pagemill errors."""
    demuxer = DEMUXERS.get(container)
    if demuxer is None:
        raise UnsupportedType("The file is not a recording in a supported format.", reason="audio_format")
    if not path.is_file():
        raise ProcessingError("The stored recording could not be read.")
    try:
        input_ = av.open(
            str(path),
            mode="r",
            format=demuxer,
            options=dict(_OPEN_OPTIONS),
            metadata_errors="ignore",
            timeout=(_OPEN_TIMEOUT_S, None),
        )
    except (av.error.FFmpegError, OSError, ValueError):
        raise CorruptFile("The recording could not be opened.", reason="container") from None
    try:
        yield input_
    finally:
        input_.close()


def _audio_stream(input_: InputContainer) -> AudioStream:
    """The container's main audio stream; every other stream is discarded in the demuxer."""
    if not input_.streams.audio:
        raise CorruptFile("The file has no audio track.", reason="no_audio_track")
    stream = input_.streams.best("audio")
    if not isinstance(stream, AudioStream):
        stream = input_.streams.audio[0]
    for other in input_.streams:
        if other.index != stream.index:
            other.discard = av.stream.Discard.all
    return stream


def _check_codec(stream: AudioStream) -> tuple[str, int, int]:
    """The decoder's name, sample rate and channel count; raises if FFmpeg cannot decode the stream."""
    context = stream.codec_context
    if context is None:
        # FFmpeg knows no decoder for this codec (or not the codec at all).
        raise UnsupportedCodec(codec="unknown")
    rate, channels = int(context.sample_rate or 0), int(context.channels or 0)
    if rate:
        _check_rate(rate, channels)
    return context.name, rate, channels


def _check_rate(rate: int, channels: int) -> None:
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise CorruptFile("The recording's sample rate is not valid.", reason="sample_rate", sample_rate=rate)
    if channels > _MAX_CHANNELS:
        raise CorruptFile("The recording has too many channels.", reason="channels", channels=channels)


def _declared_duration(input_: InputContainer, stream: AudioStream) -> float | None:
    """Seconds the header declares for the audio stream (or the whole file), None when it does not say.

    Uncompressed PCM cannot be longer than the file holds bytes for, so a WAV/RF64 header that claims more
    (a crashed recorder's placeholder size, or a lie) is capped at what the file can hold.
    """
    duration: float | None = None
    if stream.duration is not None and stream.duration > 0 and stream.time_base:
        duration = float(stream.duration * Fraction(stream.time_base))
    elif input_.duration is not None and input_.duration > 0:
        duration = float(input_.duration) / av.time_base
    context = stream.codec_context
    if duration is not None and context.name.startswith("pcm_") and context.bit_rate:
        size = input_.size if input_.size and input_.size > 0 else None
        if size is not None:
            duration = min(duration, size * 8 / context.bit_rate)
    return duration


def _decodes_something(input_: InputContainer, stream: AudioStream) -> bool:
    """True when one of the first packets decodes to samples (the codec really decodes this data)."""
    for _frame in _frames(input_, stream, _PROBE_PACKETS):
        return True
    return any(True for _frame in _flush(stream))


def _limit_samples(max_seconds: float) -> int:
    return math.ceil((max_seconds + DURATION_SLACK_S) * SAMPLE_RATE)


def _too_long(max_seconds: float, declared: float | None, decoded: int) -> AudioTooLong:
    seconds = max(declared or 0.0, decoded / SAMPLE_RATE)
    return AudioTooLong(
        f"The recording is longer than the {max_seconds:.0f} seconds allowed.",
        seconds=round(seconds, 1),
        max_seconds=max_seconds,
    )
