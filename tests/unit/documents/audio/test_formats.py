"""sniff_audio: every container we write is recognised from its first bytes; images and noise are not."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pagemill.documents.audio.formats import DEMUXERS, MEDIA_TYPES, SNIFF_BYTES, sniff_audio
from tests.support import speech
from tests.support.speech import ESPEAK

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")

SENTENCES = ["Hello there.", "Goodbye now."]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short recording per container, plus variants (no ID3, ID3 before FLAC, video). The pinned PyAV
    wheel's FFmpeg writes all of them: a missing encoder fails the fixture (ContainerUnavailable)."""
    folder = tmp_path_factory.mktemp("formats")
    files: dict[str, Path] = {}
    for container in ("wav", "mp3", "m4a", "aac", "ogg", "flac", "webm", "mkv", "mp4"):
        made = speech.make_speech(folder / f"a.{container}", SENTENCES, pause_ms=300, container=container)
        files[container] = made.path
    for container in ("mp4", "webm"):
        path = folder / f"video.{container}"
        speech.make_speech(path, SENTENCES, pause_ms=300, container=container, video=True)
        files[f"{container}+video"] = path
    files["mp3 without ID3"] = speech.strip_id3(files["mp3"], folder / "bare.mp3")
    files["flac behind ID3"] = speech.with_id3(files["flac"], folder / "tagged.flac")
    files["aac behind ID3"] = speech.with_id3(files["aac"], folder / "tagged.aac")
    files["rf64"] = speech.make_lying_wav(folder / "rf64.wav")
    return files


EXPECTED = {
    "wav": "wav",
    "rf64": "wav",
    "mp3": "mp3",
    "mp3 without ID3": "mp3",
    "m4a": "m4a",
    "aac": "aac",
    "aac behind ID3": "aac",
    "ogg": "ogg",
    "flac": "flac",
    "flac behind ID3": "flac",
    "webm": "webm",
    "webm+video": "webm",
    "mkv": "mkv",
    "mp4": "mp4",
    "mp4+video": "mp4",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_written_containers_are_recognised(made: dict[str, Path], name: str) -> None:
    head = made[name].read_bytes()[:SNIFF_BYTES]
    container = sniff_audio(head)
    assert container == EXPECTED[name]
    assert container in DEMUXERS and container in MEDIA_TYPES


def test_the_mp3_without_id3_starts_with_a_frame(made: dict[str, Path]) -> None:
    head = made["mp3 without ID3"].read_bytes()[:4]
    assert head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "m4a"),
        (_ftyp(b"M4B ", b"M4B ", b"mp42"), "m4a"),
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "mp4"),
        (_ftyp(b"mp42", b"mp42", b"isom"), "mp4"),
        (_ftyp(b"dash", b"iso6", b"mp41"), "mp4"),
        (_ftyp(b"qt  ", b"qt  "), "mp4"),
        (_ftyp(b"zzzz", b"M4A ", b"isom"), "m4a"),
        (_ftyp(b"heic", b"mif1", b"heic"), None),
        (_ftyp(b"mif1", b"mif1", b"heic", b"miaf"), None),
        (_ftyp(b"avif", b"avif", b"mif1", b"miaf", b"MA1B"), None),
        (_ftyp(b"avis", b"avis", b"msf1", b"iso8", b"mif1"), None),
        (_ftyp(b"zzzz", b"mif1", b"iso8"), None),
        (_ftyp(b"zzzz", b"yyyy"), None),
        (b"\x00\x00\x00\x08ftyp", None),  # too short for a major brand
    ],
)
def test_iso_bmff_brands(head: bytes, expected: str | None) -> None:
    assert sniff_audio(head) == expected


def _ogg_page(packet: bytes, *, bos: bool = True) -> bytes:
    header = b"OggS\x00" + bytes([0x02 if bos else 0]) + bytes(8) + bytes(4) + bytes(4) + bytes(4)
    return header + bytes([1, len(packet)]) + packet


def _ebml(doctype: bytes) -> bytes:
    element = b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    version = b"\x42\x86\x81\x01"
    body = version + element
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + b"\x18\x53\x80\x67"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (_ogg_page(b"OpusHead\x01\x01"), "ogg"),
        (_ogg_page(b"\x01vorbis\x00\x00\x00\x00"), "ogg"),
        (_ogg_page(b"\x80theora\x03\x02") + _ogg_page(b"\x01vorbis\x00\x00"), "ogg"),  # video, then audio
        (_ogg_page(b"\x80theora\x03\x02") + _ogg_page(b"\x80theora", bos=False), None),  # video only
        (_ogg_page(b"OpusHead", bos=False), None),  # not the start of a stream
        (_ebml(b"webm"), "webm"),
        (_ebml(b"matroska"), "mkv"),
        (_ebml(b"other"), None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),
        (b"fLaC\x00\x00\x00\x22" + bytes(34), "flac"),
        (b"fLaC\x04\x00\x00\x22" + bytes(34), None),  # the first block must be STREAMINFO
        (b"ID3\x05\x00\x00\x00\x00\x00\x00", None),  # no such ID3 version
        (b"ID3\x03\x00\x00\x00\x00\x00\x80", None),  # a size byte that is not syncsafe
        (b"ID3\x03\x00\x00\x00\x00\x7f\x7f", "mp3"),  # a tag larger than the head: trust it
        (b"", None),
        (b"ID3", None),
        (b"%PDF-1.7\n", None),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"PK\x03\x04", None),
        (b"meeting notes, not a recording\n" * 20, None),
    ],
)
def test_signatures(head: bytes, expected: str | None) -> None:
    assert sniff_audio(head) == expected


def test_random_bytes_are_not_audio() -> None:
    rng = np.random.default_rng(20240611)
    hits = [i for i in range(20_000) if sniff_audio(rng.bytes(SNIFF_BYTES)) is not None]
    assert hits == []


def test_a_lone_frame_sync_is_not_enough() -> None:
    """Random data behind a valid-looking MPEG or ADTS header: the next frame's header does not follow."""
    rng = np.random.default_rng(7)
    mpeg = bytes([0xFF, 0xFB, 0x90, 0x64])  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
    adts = bytes([0xFF, 0xF1, 0x50, 0x80, 0x2E, 0x7F, 0xFC])  # AAC LC, 44.1 kHz, mono, 369 bytes
    for header in (mpeg, adts):
        hits = [i for i in range(2_000) if sniff_audio(header + rng.bytes(SNIFF_BYTES)) is not None]
        assert hits == []


def test_a_chain_of_frames_is_mp3_and_a_broken_chain_is_not() -> None:
    header = bytes([0xFF, 0xFB, 0x90, 0x64])  # 417 bytes per frame (no padding)
    frame = header + bytes(413)
    assert sniff_audio(frame * 10) == "mp3"
    broken = bytearray(frame * 10)
    broken[417 * 2 : 417 * 2 + 4] = bytes([0xFF, 0xF3, 0x90, 0x64])  # MPEG-2: another stream
    assert sniff_audio(bytes(broken)) is None
    assert sniff_audio(frame) == "mp3"  # a whole file of one frame
    assert sniff_audio(frame[:300]) is None  # one cut-off frame proves nothing


def test_only_the_first_4096_bytes_are_read() -> None:
    assert sniff_audio(b"\x00" * SNIFF_BYTES + b"fLaC") is None
