"""A recording's pieces made here exactly as the service makes them, for the other side of a comparison.

The recording is cut with ``cut_recording`` (the function the worker's sandboxed probe runs) and each speech
piece decoded from its stored FLAC with ``decode_piece`` (as the worker decodes it), so the direct pool of
:mod:`bench.audio_cpu` and the simulator's known-text map (:mod:`bench.audio_gpu`, the GPU-pool tests) see
the very samples the service sends to its engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pagemill.documents.audio.cutting import INDEX_NAME, AudioCut, cut_recording, piece_name, read_index
from pagemill.documents.audio.pieces import decode_piece
from pagemill.documents.audio.split import Piece
from pagemill.engines.audio_base import Pcm
from tests.support.speech import SpeechFile

MAX_RECORDING_S = 4 * 3600.0
"""The longest recording the cut accepts here: the service's default limit, far above any benchmark's."""


def cut_like_the_probe(path: Path, container: str, folder: Path, max_piece_s: float) -> list[Piece]:
    """Cut the recording at ``path`` into the new directory ``folder``; every piece, speech or not."""
    folder.mkdir()
    cut_recording(path, container, AudioCut(folder, MAX_RECORDING_S, max_piece_s))
    return read_index((folder / INDEX_NAME).read_bytes())


def speech_samples(folder: Path, pieces: list[Piece]) -> Iterator[tuple[int, Piece, Pcm]]:
    """Each speech piece of a cut ``folder`` (its number among all pieces, the piece, its samples), decoded
    one at a time as it is asked for."""
    for number, piece in enumerate(pieces):
        if piece.speech:
            yield number, piece, decode_piece((folder / piece_name(number)).read_bytes())


def spoken_pieces(
    recording: SpeechFile, folder: Path, max_piece_s: float
) -> tuple[list[tuple[Pcm, str]], int]:
    """Each speech piece's samples and the sentences spoken in it (those whose middle falls inside it), as
    the service will cut ``recording`` (into the new directory ``folder``); and the number of pieces."""
    index = cut_like_the_probe(recording.path, recording.container, folder, max_piece_s)
    spoken = []
    for _, piece, pcm in speech_samples(folder, index):
        sentences = [
            sentence
            for sentence, (start, end) in zip(recording.sentences, recording.speech, strict=True)
            if piece.start_s <= (start + end) / 2 < piece.end_s
        ]
        spoken.append((pcm, " ".join(sentences)))
    return spoken, len(index)
