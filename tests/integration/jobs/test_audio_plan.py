"""Cutting a recording's job (real probe child, real blob store and database): pieces are stored with their
index and handed on while the recording is still being cut, a recording past the audio quota stops as soon
as its pieces pass it (taking nothing), and what the child announces is checked like its answer."""

from __future__ import annotations

import json
import uuid

import pytest

from pagemill import db
from pagemill.documents.audio.source import index_key, piece_key
from pagemill.errors import AudioTooLong, CorruptFile
from pagemill.jobs import audio_plan
from pagemill.models.base import utcnow
from pagemill.settings import Settings, get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy import repository as tenancy_repo
from pagemill.tenancy import usage
from tests.support import speech
from tests.support.factories import make_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> speech.SpeechFile:
    """Three minutes of speech with 2 s pauses (FLAC): seven or so pieces."""
    if speech.ESPEAK is None:  # only the tests of a real recording need it; the line checks do not
        pytest.skip("espeak-ng is not installed: make system-deps installs it")
    return speech.make_long_speech(
        tmp_path_factory.mktemp("audio") / "talk.flac", minutes=3, container="flac"
    )


def _stored(job_id: str, count: int) -> list[list[object]]:
    """The job's stored piece index, after checking that its first ``count`` pieces are stored."""
    store = get_blob_store()
    for index in range(count):
        assert b"".join(store.iter_chunks(piece_key(job_id, index))), index
    entries: list[list[object]] = json.loads(b"".join(store.iter_chunks(index_key(job_id))))
    return entries


def test_pieces_are_stored_and_handed_on_while_the_recording_is_cut(
    database: str, recording: speech.SpeechFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_plan, "_STORE_EVERY_S", 0.0)  # every piece as it comes, not every 0.25 s
    job = make_job(kind="flac", source_key="unused")
    seen: list[tuple[int, int]] = []  # (pieces stored, entries in the stored index) at each call

    def on_pieces(stored: int) -> None:
        seen.append((stored, len(_stored(job.id, stored))))

    count = audio_plan.cut_and_store(job, recording.path, get_settings(), on_pieces=on_pieces)

    assert count >= 6
    assert len(seen) >= 2, seen  # handed on more than once, so before the cut ended
    assert all(stored == entries for stored, entries in seen), seen  # each piece's times are stored first
    assert [stored for stored, _ in seen] == sorted({stored for stored, _ in seen})
    assert seen[-1][0] <= count
    index = _stored(job.id, count)
    assert len(index) == count and index[-1][1] == pytest.approx(recording.duration_s, abs=0.5)


def test_a_retried_cut_never_shrinks_the_index_pages_may_be_reading(
    database: str, recording: speech.SpeechFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_plan, "_STORE_EVERY_S", 0.0)
    job = make_job(kind="flac", source_key="unused")
    count = audio_plan.cut_and_store(job, recording.path, get_settings())
    first = _stored(job.id, count)
    seen: list[int] = []

    # The same job cut again (its ingest retried): the pages of the first cut may be read meanwhile.
    again = audio_plan.cut_and_store(
        job,
        recording.path,
        get_settings(),
        on_pieces=lambda stored: seen.append(len(_stored(job.id, stored))),
    )
    assert again == count and seen
    assert all(entries == count for entries in seen), seen
    assert _stored(job.id, count) == first


def test_without_a_listener_the_pieces_are_stored_at_the_end(
    database: str, recording: speech.SpeechFile
) -> None:
    job = make_job(kind="flac", source_key="unused")
    count = audio_plan.cut_and_store(job, recording.path, get_settings())
    assert len(_stored(job.id, count)) == count


def test_a_recording_past_the_quota_stops_while_it_is_cut(
    database: str, recording: speech.SpeechFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_plan, "_STORE_EVERY_S", 0.0)
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    settings = Settings(tiers={"free": {"audio_minutes_per_day": 1}})
    job = make_job(kind="flac", source_key="unused", tenant_id=tenant, tier="free")
    stored: list[int] = []

    with pytest.raises(AudioTooLong) as raised:
        audio_plan.cut_and_store(job, recording.path, settings, on_pieces=stored.append)

    assert raised.value.message.startswith("The recording is at least "), raised.value.message
    assert raised.value.details["remaining_seconds"] == 60
    # Nothing past the minute was handed on, and nothing was counted.
    index = _stored(job.id, stored[-1]) if stored else []
    assert all(end <= 60 for _, end, _ in index), index  # type: ignore[operator]
    with db.session_scope() as session:
        for period in usage.periods(utcnow()):
            ledger = usage.AUDIO_DAY if period.kind == usage.DAY else usage.AUDIO_MONTH
            assert tenancy_repo.usage(session, tenant, ledger, period.key) == 0


def test_an_announcement_that_is_not_a_piece_is_a_corrupt_file() -> None:
    for line in (b"not json", b'{"a": 1}', b"[1, 2]", b'[1, "x", true]', b"[5, 2, true]", b"[NaN, 1, true]"):
        with pytest.raises(CorruptFile):
            audio_plan._entry(line)
    assert audio_plan._entry(b"[0.5, 2.25, true]") == [0.5, 2.25, True]
