"""A recording's stored pieces, opened for the job's workers as :class:`~pagemill.documents.source.
DocumentSource` opens a document's pages: piece ``i`` is page ``i``.

The pieces were cut once, when the job was planned (pagemill.jobs.audio_plan), and stored beside the
original: a page reads its piece (a few hundred KB of FLAC), never the whole recording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from pagemill.documents.audio.cutting import INDEX_NAME, piece_name, read_index
from pagemill.documents.audio.decode import Pcm
from pagemill.documents.audio.pieces import decode_piece
from pagemill.documents.audio.split import Piece
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.source import DocumentSource
from pagemill.errors import NotFound, ProcessingError
from pagemill.storage import BlobStore


def pieces_prefix(job_id: str) -> str:
    """Where a job's pieces are stored."""
    return f"jobs/{job_id}/pieces/"


def piece_key(job_id: str, index: int) -> str:
    """The blob of piece ``index`` of a job."""
    return pieces_prefix(job_id) + piece_name(index)


def index_key(job_id: str) -> str:
    """The blob listing a job's pieces (their times)."""
    return pieces_prefix(job_id) + INDEX_NAME


class AudioSource(DocumentSource):
    """The pieces of a recording: their times, and their samples loaded on request (``load(i)`` gives
    piece ``i``'s stored bytes)."""

    def __init__(self, kind: DocumentKind, pieces: list[Piece], load: Callable[[int], bytes]) -> None:
        self.kind = kind
        self.pieces = pieces
        self.page_count = len(pieces)
        self._load = load

    def piece(self, index: int) -> Piece:
        """Piece ``index``'s place in the recording."""
        self._check_index(index)
        return self.pieces[index]

    def samples(self, index: int) -> Pcm:
        """Piece ``index`` as 16 kHz mono float32 samples."""
        self._check_index(index)
        return decode_piece(self._load(index))

    def render(self, index: int, dpi: int, max_side: int | None = None) -> Image.Image:
        """Recordings have no page images."""
        raise TypeError("recordings have no page image")

    def close(self) -> None:
        """Nothing to release: pieces are read whole when asked for."""


def stored_audio_source(job_id: str, kind: DocumentKind, store: BlobStore) -> AudioSource:
    """The pieces of job ``job_id``, stored when it was planned."""

    def blob(key: str) -> bytes:
        try:
            return b"".join(store.iter_chunks(key))
        except NotFound as exc:
            raise ProcessingError("The recording's pieces are missing.", reason="pieces") from exc

    pieces = read_index(blob(index_key(job_id)))
    return AudioSource(kind, pieces, lambda index: blob(piece_key(job_id, index)))


def folder_audio_source(folder: Path, kind: DocumentKind) -> AudioSource:
    """The pieces :func:`~pagemill.documents.audio.cutting.cut_recording` wrote to ``folder``
    (`pagemill convert`)."""
    pieces = read_index((folder / INDEX_NAME).read_bytes())
    return AudioSource(kind, pieces, lambda index: (folder / piece_name(index)).read_bytes())
