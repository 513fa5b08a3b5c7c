"""Cut a recording into its stored pieces: decode as a stream, split at silences, write each piece as it is
cut. Runs inside the sandboxed probe child (pagemill.documents.probe), so memory stays at about one piece
plus the splitter's look-ahead whatever the recording's length, and a file that decodes past
``max_seconds`` stops with AUDIO_TOO_LONG.

The folder then holds ``NNNNN.flac`` per piece and ``pieces.json`` (``[[start_s, end_s, speech], ...]``):
the job's pages, uploaded by the worker (pagemill.jobs.audio_plan) and read back per page
(:mod:`pagemill.documents.audio.source`), so a retried page never decodes the recording again.

While it cuts, each finished piece is announced by a line of ``pieces.jsonl`` (``[start_s, end_s, speech]``),
written after the piece's file is complete: the worker stores and starts the pieces cut so far while the
rest of the recording is still being decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagemill.documents.audio.decode import iter_pcm, probe_audio
from pagemill.documents.audio.pieces import encode_piece
from pagemill.documents.audio.split import Piece, iter_pieces

INDEX_NAME = "pieces.json"
PROGRESS_NAME = "pieces.jsonl"
PIECE_SUFFIX = ".flac"


@dataclass(frozen=True, slots=True)
class AudioCut:
    """Where and how the probe cuts a recording: the folder it writes to, the longest recording accepted,
    the longest piece."""

    folder: Path
    max_seconds: float
    max_piece_s: float = 30.0


def piece_name(index: int) -> str:
    """The file (and blob) name of piece ``index``."""
    return f"{index:05d}{PIECE_SUFFIX}"


def cut_recording(path: Path, container: str, cut: AudioCut) -> dict[str, Any]:
    """Cut the recording at ``path`` into ``cut.folder``; its page count (pieces) and duration, as the
    probe answers for a document. CorruptFile, UnsupportedCodec, AudioTooLong for recordings that cannot
    be read or are too long (the header is checked first, then the decoded samples as they come)."""
    info = probe_audio(path, cut.max_seconds, container=container)
    pieces: list[Piece] = []
    with (cut.folder / PROGRESS_NAME).open("w", encoding="utf-8") as progress:
        for piece, samples in iter_pieces(
            iter_pcm(path, cut.max_seconds, container=container), 16000, cut.max_piece_s
        ):
            name = piece_name(len(pieces))
            partial = cut.folder / f"{name}.part"
            partial.write_bytes(encode_piece(samples))
            partial.replace(cut.folder / name)  # complete before it is announced
            progress.write(json.dumps(_entry(piece)) + "\n")
            progress.flush()
            pieces.append(piece)
    (cut.folder / INDEX_NAME).write_text(json.dumps([_entry(p) for p in pieces]))
    duration = max((p.end_s for p in pieces), default=0.0)
    return {
        "page_count": len(pieces),
        "encrypted": False,
        "duration_s": max(duration, info.duration_s or 0.0),
        "codec": info.codec,
    }


def _entry(piece: Piece) -> list[Any]:
    return [round(piece.start_s, 3), round(piece.end_s, 3), piece.speech]


def read_index(data: bytes) -> list[Piece]:
    """The pieces of a ``pieces.json``."""
    return [Piece(float(start), float(end), bool(speech)) for start, end, speech in json.loads(data)]
