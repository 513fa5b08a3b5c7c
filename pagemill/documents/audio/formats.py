"""Recognise an audio (or audio-bearing video) container from its first bytes.

Only content decides, as for documents (:mod:`pagemill.documents.kinds`): names and Content-Type headers prove
nothing. The checks are strict where a signature is short: a bare MPEG audio or ADTS frame sync is two
bytes, which random binary matches once in a few thousand files, so a chain of consistent frame headers is
required; an ISO BMFF ``ftyp`` is shared with HEIF/AVIF images, which are refused by brand.

Each answer names the FFmpeg demuxer that may open the file (:data:`DEMUXERS`): the decoder forces it, so
FFmpeg never probes a hostile file into one of its other demuxers (playlists, concat lists, image readers).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, Literal

AudioContainer = Literal["wav", "mp3", "aac", "m4a", "mp4", "ogg", "flac", "webm", "mkv"]
"""A container :func:`sniff_audio` recognises."""

SNIFF_BYTES: Final = 4096
"""How many leading bytes :func:`sniff_audio` looks at."""

DEMUXERS: Final[dict[str, str]] = {
    "wav": "wav",  # also RF64 and BW64
    "mp3": "mp3",  # every MPEG-1/2/2.5 audio layer
    "aac": "aac",  # ADTS
    "m4a": "mov",
    "mp4": "mov",
    "ogg": "ogg",
    "flac": "flac",
    "webm": "matroska",
    "mkv": "matroska",
}
"""The FFmpeg demuxer that opens each container."""

MEDIA_TYPES: Final[dict[str, str]] = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
}
"""The IANA media type of each container."""

_AUDIO_BRANDS: Final = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_VIDEO_BRANDS: Final = frozenset(
    {b"isom", b"mp41", b"mp42", b"mp71", b"avc1", b"dash", b"cmfc", b"cmf2", b"msdh", b"msix", b"qt  "}
    | {b"iso%d" % n for n in range(2, 10)}
    | {b"3gp%d" % n for n in range(4, 10)}
    | {b"3g2a", b"3g2b", b"3g2c", b"M4V ", b"M4VH", b"M4VP", b"f4v ", b"F4V ", b"F4P ", b"mmp4", b"MSNV"}
    | {b"XAVC", b"NDAS"}
)
# HEIF, AVIF and other still-image brands of ISO BMFF (and Canon's raw format): pictures, not recordings.
_IMAGE_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"mif2", b"msf1"}
    | {b"avif", b"avis", b"avio", b"avci", b"avcs", b"miaf", b"MiHA", b"MiHB", b"MiHE", b"MA1A", b"MA1B"}
    | {b"vvic", b"vvis", b"j2ki", b"j2is", b"jpgs", b"crx "}
)
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE: Final = 0x4282
_EBML_DOCTYPES: Final[dict[bytes, AudioContainer]] = {b"webm": "webm", b"matroska": "mkv"}
_OGG_AUDIO: Final = (b"OpusHead", b"\x01vorbis", b"\x7fFLAC", b"Speex   ")
_OGG_BOS: Final = 0x02

# kbit/s by bitrate index 1..14, for (MPEG-1?, layer) with layer 3 = Layer I, 2 = II, 1 = III.
_MPEG_BITRATES: Final[dict[tuple[bool, int], tuple[int, ...]]] = {
    (True, 3): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Sample rates by version bits (0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1) and rate index 0..2.
_MPEG_RATES: Final = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}

# A frame header: its length in bytes and what every frame of the same stream repeats.
_Frame = tuple[int, tuple[int, ...]]
_FrameParser = Callable[[bytes, int], "_Frame | None"]
_MPEG_HEADER: Final = 4
_ADTS_HEADER: Final = 7


def sniff_audio(head: bytes) -> AudioContainer | None:
    """The container of a recording from its first bytes (up to :data:`SNIFF_BYTES`), or None.

    Recognises WAV (RIFF, RF64, BW64), MP3 (an ID3v2 tag, or a chain of MPEG audio frame headers), AAC
    (a chain of ADTS headers), M4A and MP4 (ISO BMFF by ``ftyp`` brand; HEIF/AVIF images give None), Ogg
    (Opus, Vorbis, FLAC or Speex), FLAC, WebM and Matroska (EBML DocType). ``head`` may be the whole file
    when it is shorter.
    """
    head = head[:SNIFF_BYTES]
    if len(head) < 4:
        return None
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac" if _is_flac(head) else None
    if head[:4] == b"OggS":
        return "ogg" if _is_ogg_audio(head) else None
    if head[:4] == _EBML_MAGIC:
        return _ebml_kind(head)
    if head[4:8] == b"ftyp":
        return _iso_bmff_kind(head)
    if head[:3] == b"ID3":
        return _after_id3(head)
    if _frame_chain(head, 0, _adts_frame, _ADTS_HEADER, need=2):
        return "aac"
    if _frame_chain(head, 0, _mpeg_frame, _MPEG_HEADER, need=2):
        return "mp3"
    return None


def _is_flac(head: bytes) -> bool:
    # The first metadata block must be STREAMINFO (type 0, 34 bytes long).
    return len(head) < 8 or (head[4] & 0x7F == 0 and head[5:8] == b"\x00\x00\x22")


def _is_ogg_audio(head: bytes) -> bool:
    """True when one of the Ogg streams that begin the file (BOS pages) carries an audio codec."""
    offset = 0
    while offset + 27 <= len(head) and head[offset : offset + 4] == b"OggS" and head[offset + 4] == 0:
        if not head[offset + 5] & _OGG_BOS:
            return False  # every stream begins before any data page: no audio stream begins later
        segments = head[offset + 26]
        body = offset + 27 + segments
        if body > len(head):
            return False
        if head[body : body + 8].startswith(_OGG_AUDIO):
            return True
        offset = body + sum(head[offset + 27 : body])
    return False


def _ebml_kind(head: bytes) -> AudioContainer | None:
    """``webm`` or ``mkv`` from the DocType of an EBML header, None for other EBML documents."""
    parsed = _vint(head, 4, keep_marker=False)
    if parsed is None:
        return None
    size, offset = parsed
    end = min(len(head), offset + size)
    while offset < end:
        element = _vint(head, offset, keep_marker=True)
        if element is None:
            return None
        element_id, offset = element
        length = _vint(head, offset, keep_marker=False)
        if length is None:
            return None
        size, offset = length
        if element_id == _EBML_DOCTYPE:
            doctype = head[offset : offset + size].rstrip(b"\x00")
            return _EBML_DOCTYPES.get(doctype)
        offset += size
    return None


def _vint(data: bytes, offset: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``offset``: (value, offset after it), or None if malformed."""
    if offset >= len(data) or data[offset] == 0:
        return None
    first = data[offset]
    length = 9 - first.bit_length()
    if offset + length > len(data):
        return None
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[offset + 1 : offset + length]:
        value = (value << 8) | byte
    return value, offset + length


def _iso_bmff_kind(head: bytes) -> AudioContainer | None:
    """``m4a`` or ``mp4`` by the ``ftyp`` box's brands; None for images and unknown brands."""
    (size,) = struct.unpack(">I", head[:4])
    if size < 16 or len(head) < 12:
        return None
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    if major in _IMAGE_BRANDS:
        return None
    if major in _AUDIO_BRANDS:
        return "m4a"
    if major in _VIDEO_BRANDS:
        return "mp4"
    if compatible & _IMAGE_BRANDS:
        return None
    if compatible & _AUDIO_BRANDS:
        return "m4a"
    if compatible & _VIDEO_BRANDS:
        return "mp4"
    return None


def _after_id3(head: bytes) -> AudioContainer | None:
    """What follows an ID3v2 tag: FLAC or ADTS when visible, else MP3 (a tag with cover art may be larger
    than the head, and the tag itself is strong evidence)."""
    if len(head) < 10:
        return None
    major, revision, _flags = head[3], head[4], head[5]
    size_bytes = head[6:10]
    if major not in (2, 3, 4) or revision == 0xFF or any(b & 0x80 for b in size_bytes):
        return None
    size = 10 + ((size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3])
    if head[5] & 0x10:  # a footer (ID3v2.4)
        size += 10
    while size < len(head) and head[size] == 0:
        size += 1  # padding some writers leave after the tag
    if size + 4 > len(head):
        return "mp3"
    if head[size : size + 4] == b"fLaC":
        return "flac"
    if _frame_chain(head, size, _adts_frame, _ADTS_HEADER, need=1):
        return "aac"
    if _frame_chain(head, size, _mpeg_frame, _MPEG_HEADER, need=1):
        return "mp3"
    return None


def _frame_chain(head: bytes, offset: int, parse: _FrameParser, header: int, *, need: int) -> bool:
    """True when consistent frame headers (``header`` bytes each) follow each other from ``offset`` to the
    end of ``head``: at least ``need`` of them, or a chain that ends exactly where ``head`` does (a whole,
    tiny file). A header cut off by the end of the head proves nothing either way."""
    count = 0
    key: tuple[int, ...] | None = None
    while offset + header <= len(head):
        frame = parse(head, offset)
        if frame is None:
            return False
        length, frame_key = frame
        if key is not None and frame_key != key:
            return False
        key = frame_key
        count += 1
        offset += length
    return count >= need or (offset == len(head) and count > 0)


def _mpeg_frame(head: bytes, offset: int) -> _Frame | None:
    """Length and stream key of an MPEG audio frame header at ``offset`` (any layer), None if invalid."""
    b0, b1, b2, b3 = head[offset : offset + 4]
    if b0 != 0xFF or b1 & 0xE0 != 0xE0:
        return None
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer == 0 or bitrate_index in (0, 15) or rate_index == 3 or b3 & 3 == 2:
        return None
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 3:
        length = (12 * bitrate // rate + padding) * 4
    elif layer == 2 or mpeg1:
        length = 144 * bitrate // rate + padding
    else:
        length = 72 * bitrate // rate + padding
    return length, (version, layer, rate_index)


def _adts_frame(head: bytes, offset: int) -> _Frame | None:
    """Length and stream key of an ADTS (AAC) frame header at ``offset``, None if invalid."""
    b0, b1, b2, b3, b4, b5 = head[offset : offset + 6]
    if b0 != 0xFF or b1 & 0xF6 != 0xF0:
        return None
    rate_index = (b2 >> 2) & 0x0F
    channels = ((b2 & 1) << 2) | (b3 >> 6)
    length = ((b3 & 3) << 11) | (b4 << 3) | (b5 >> 5)
    if rate_index > 12 or length < (7 if b1 & 1 else 9):
        return None
    return length, (b1 & 0x08, b2 >> 6, rate_index, channels)
