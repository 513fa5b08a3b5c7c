"""Planning a recording's job: cut it into pieces in the sandboxed probe, store the pieces beside the
original, count its minutes against the tier's audio quota. Its pieces are then its pages.

The recording is decoded once, here; each piece is stored (FLAC, a few hundred KB) so a page read again
(a retry, a crash, a fallback engine) loads its piece, never the recording.

Pieces are stored while the probe is still cutting (it announces each finished one), and handed to
``on_pieces`` so their pages can start at once: a long recording's first pieces are transcribed while the
rest is decoded, instead of after all of it (a 100-minute recording takes ~14 s to cut here).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from pagemill.db import session_scope
from pagemill.documents.audio.cutting import PROGRESS_NAME, AudioCut, piece_name
from pagemill.documents.audio.source import index_key, piece_key
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.probe import probe_document
from pagemill.errors import CorruptFile, NotFound
from pagemill.models import Job
from pagemill.models.base import utcnow
from pagemill.settings import Settings, TierSettings
from pagemill.storage import BlobStore, get_blob_store
from pagemill.tenancy import usage

log = logging.getLogger(__name__)

PiecesStored = Callable[[int], None]
"""Told how many pieces are stored so far (their index too), while the recording is still being cut."""

_STORE_EVERY_S: Final = 0.25
"""How often pieces cut meanwhile are stored and handed on (the first ones at once): each time rewrites
the job's piece index, so not at every piece of a long recording."""


def _tier(job: Job, settings: Settings) -> TierSettings | None:
    """The job's tier at submission (None for a tier removed from the settings since)."""
    try:
        return settings.tiers.get(job.tier) if job.tier is not None else None
    except KeyError:
        return None


def max_seconds(job: Job, settings: Settings) -> int:
    """The longest recording this job may hold: the service's cap, and the tier's (at submission)."""
    tier = _tier(job, settings)
    limit = settings.audio.max_audio_seconds
    return min(limit, tier.max_audio_seconds) if tier is not None else limit


def cut_and_store(job: Job, path: Path, settings: Settings, on_pieces: PiecesStored | None = None) -> int:
    """Cut the recording at ``path`` (the job's original) into pieces, store them (telling ``on_pieces``
    as they come), take its seconds from the tenant's audio quota; the number of pieces (the job's page
    count). AudioTooLong, CorruptFile, UnsupportedCodec, ProcessingTimeout for recordings that cannot be
    taken; with ``on_pieces``, AudioTooLong as soon as the pieces cut so far pass what is left of the quota
    (none of them is handed on)."""
    assert job.kind is not None
    store = get_blob_store()
    tier = _tier(job, settings)
    with tempfile.TemporaryDirectory(prefix="pagemill-pieces-") as folder:
        cut = AudioCut(Path(folder), float(max_seconds(job, settings)), settings.audio.max_piece_s)

        def within_quota(seconds: float) -> None:
            if tier is not None and job.tier is not None:
                with session_scope() as session:
                    usage.check_audio_seconds(
                        session, job.tenant_id, job.tier, tier, utcnow(), math.ceil(seconds)
                    )

        stream = _PieceStream(job.id, cut.folder, store, within_quota, on_pieces)
        kind, limits = DocumentKind(job.kind), settings.limits
        info = probe_document(path, kind, password=None, limits=limits, audio=cut, on_wait=stream.poll)
        seconds = math.ceil(info.duration_s or 0.0)
        if tier is not None and job.tier is not None:
            # In its own transaction, once the length is known. A recording over the quota fails its job;
            # the pieces stored meanwhile go with the job's original (retention).
            with session_scope() as session:
                usage.take_audio_seconds(session, job.tenant_id, job.tier, tier, utcnow(), seconds)
        stream.finish(info.page_count)
    log.info("job %s: %d s of audio cut into %d pieces", job.id, seconds, info.page_count)
    return info.page_count


class _PieceStream:
    """The pieces the probe's child has announced (``pieces.jsonl``): stored with the job's piece index
    (their times, which a page needs), then handed on. Called from the probe's parent while it waits."""

    def __init__(
        self,
        job_id: str,
        folder: Path,
        store: BlobStore,
        within_quota: Callable[[float], None],
        on_pieces: PiecesStored | None,
    ) -> None:
        self._job_id = job_id
        self._folder = folder
        self._store = store
        self._within_quota = within_quota
        self._on_pieces = on_pieces
        self._entries: list[list[Any]] = []
        self._stored = 0
        self._offset = 0
        self._stored_at = 0.0
        # A retried cut finds the pieces and the index of the attempt before (the cut is deterministic):
        # their pages may be read meanwhile, so the index never shrinks and those pieces are not sent again.
        self._kept = _stored_count(store, job_id)

    def poll(self) -> None:
        """Store and hand on the pieces cut since the last call (at most every :data:`_STORE_EVERY_S`)."""
        if self._on_pieces is None:
            return  # nothing starts before the plan: everything is stored at the end
        if self._stored and time.monotonic() - self._stored_at < _STORE_EVERY_S:
            return
        self._read()
        if len(self._entries) > self._stored:
            self._within_quota(self._entries[-1][1])
            self._store_new()
            self._on_pieces(self._stored)

    def finish(self, page_count: int) -> None:
        """Store the pieces not stored yet and the whole index (the probe has answered ``page_count``)."""
        self._read()
        if len(self._entries) != page_count:
            raise CorruptFile(reason="probe_answer")
        self._store_new()

    def _read(self) -> None:
        """The complete lines added to the progress file since the last read."""
        try:
            with (self._folder / PROGRESS_NAME).open("rb") as progress:
                progress.seek(self._offset)
                data = progress.read()
        except FileNotFoundError:
            return  # the child has not started cutting yet
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        self._entries += [_entry(line) for line in complete.splitlines()]

    def _store_new(self) -> None:
        for index in range(max(self._stored, self._kept), len(self._entries)):
            with (self._folder / piece_name(index)).open("rb") as piece:
                self._store.put_file(piece_key(self._job_id, index), piece, content_type="audio/flac")
        if len(self._entries) > self._kept:
            self._store.put_bytes(
                index_key(self._job_id), json.dumps(self._entries).encode(), content_type="application/json"
            )
        self._stored = len(self._entries)
        self._stored_at = time.monotonic()


def _stored_count(store: BlobStore, job_id: str) -> int:
    """How many pieces the job's stored index lists (0 when there is none yet)."""
    try:
        return len(json.loads(b"".join(store.iter_chunks(index_key(job_id)))))
    except (NotFound, ValueError):  # none yet, or damaged: it is written again
        return 0


def _entry(line: bytes) -> list[Any]:
    """One announced piece, ``[start_s, end_s, speech]``; CorruptFile for anything else (the child read a
    hostile file: its words are checked like its answer)."""
    try:
        start, end, speech = json.loads(line)
        entry = [float(start), float(end), bool(speech)]
    except (ValueError, TypeError):
        raise CorruptFile(reason="probe_answer") from None
    if not (math.isfinite(entry[0]) and math.isfinite(entry[1]) and 0 <= entry[0] <= entry[1]):
        raise CorruptFile(reason="probe_answer")
    return entry
