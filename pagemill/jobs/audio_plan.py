"""Planning a recording's job: cut it into pieces in the sandboxed probe, store the pieces beside the
original, count its minutes against the tier's audio quota. Its pieces are then its pages.

The recording is decoded once, here; each piece is stored (FLAC, a few hundred KB) so a page read again
(a retry, a crash, a fallback engine) loads its piece, never the recording.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

from pagemill.db import session_scope
from pagemill.documents.audio.cutting import INDEX_NAME, AudioCut, piece_name
from pagemill.documents.audio.source import index_key, piece_key
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.probe import probe_document
from pagemill.models import Job
from pagemill.models.base import utcnow
from pagemill.settings import Settings, TierSettings
from pagemill.storage import get_blob_store
from pagemill.tenancy import usage

log = logging.getLogger(__name__)


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


def cut_and_store(job: Job, path: Path, settings: Settings) -> int:
    """Cut the recording at ``path`` (the job's original) into pieces, store them, take its seconds from
    the tenant's audio quota; the number of pieces (the job's page count). AudioTooLong, CorruptFile,
    UnsupportedCodec, ProcessingTimeout for recordings that cannot be taken."""
    assert job.kind is not None
    store = get_blob_store()
    with tempfile.TemporaryDirectory(prefix="pagemill-pieces-") as folder:
        cut = AudioCut(Path(folder), float(max_seconds(job, settings)), settings.audio.max_piece_s)
        info = probe_document(path, DocumentKind(job.kind), password=None, limits=settings.limits, audio=cut)
        seconds = math.ceil(info.duration_s or 0.0)
        tier = _tier(job, settings)
        if tier is not None and job.tier is not None:
            # In its own transaction, before the pieces are stored: a recording over the quota fails its job
            # with nothing left behind.
            with session_scope() as session:
                usage.take_audio_seconds(session, job.tenant_id, job.tier, tier, utcnow(), seconds)
        for index in range(info.page_count):
            with (cut.folder / piece_name(index)).open("rb") as piece:
                store.put_file(piece_key(job.id, index), piece, content_type="audio/flac")
        store.put_bytes(
            index_key(job.id), (cut.folder / INDEX_NAME).read_bytes(), content_type="application/json"
        )
    log.info("job %s: %d s of audio cut into %d pieces", job.id, seconds, info.page_count)
    return info.page_count
