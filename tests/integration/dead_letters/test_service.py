"""Dead letters on real migrated databases (SQLite and Postgres), the embedded broker and a local blob store:
recorded where work fails for good (through the worker's own code paths), listed, replayed, refused.

No worker process runs: a crashing page is played by claiming it ``worker.max_attempts`` times without
finishing it (as a worker killed mid-page leaves it), then the worker code finds it poisoned.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, select, update

from pagemill import db, queue
from pagemill.dead_letters import service
from pagemill.errors import (
    CorruptFile,
    EncryptedFile,
    NotFound,
    ProcessingError,
    ProcessingTimeout,
    ReplayNotAllowed,
    ReplaySourceGone,
    WorkerCrashed,
)
from pagemill.jobs import claim_repository as claims_repo
from pagemill.jobs import claims, page_work, processing, sweeper
from pagemill.jobs import repository as repo
from pagemill.models import DeadLetter, Event, Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.retention import repository as retention_repo
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor
from tests.support.documents import make_text_pdf
from tests.support.factories import make_job

pytestmark = [
    pytest.mark.integration,
    # kombu's SQLAlchemy transport (the embedded broker) maps its tables with a loader SQLAlchemy deprecates.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

OPERATOR = Actor(subject="key:key_operator", ip="127.0.0.1", request_id="req-1")


@pytest.fixture(autouse=True)
def process_state(database: str) -> Iterator[None]:
    """This module's database, blob folder and broker, as a fresh worker process would make them."""
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()
    with db.session_scope() as session:
        session.execute(delete(DeadLetter))
        session.execute(delete(Page))
        session.execute(delete(Job))
    yield
    if queue.get_celery.cache_info().currsize:
        queue.get_celery().close()
    queue.get_celery.cache_clear()
    get_blob_store.cache_clear()


def submitted(tmp_path: Path, pages: list[str], tenant: str = "default") -> str:
    """A queued job of a born-digital PDF with its original stored, as the API leaves it; its id."""
    job_id = str(uuid.uuid4())
    with make_text_pdf(tmp_path / f"{job_id}.pdf", pages).open("rb") as handle:
        get_blob_store().put_file(f"jobs/{job_id}/source", handle)
    with db.session_scope() as session:
        repo.add_job(session, make_job(job_id, tenant_id=tenant))
    return job_id


def crash_first_page(job_id: str) -> None:
    """Plan the job, then take its first page ``max_attempts`` times and drop it, as a poison page that kills
    its worker does; the worker that claims it next gives it up (WORKER_CRASHED)."""
    settings = get_settings()
    processing.ingest_job(job_id)
    for _ in range(settings.worker.max_attempts):
        claim = claims.claim_next(queue.CPU_QUEUE, settings, max_pages=1)
        assert claim is not None and claim.indices == [0]
        with db.session_scope() as session:
            claims_repo.release_claim(session, claim.claim_id)  # the sweeper, once the holder is dead
    page_work.read_next(queue.CPU_QUEUE)


def load(job_id: str) -> Job:
    with db.session_scope() as session:
        job = repo.get_job(session, job_id)
        assert job is not None
        session.expunge(job)
        return job


def dead_letters_of(job_id: str) -> list[DeadLetter]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(DeadLetter).where(DeadLetter.job_id == job_id)))
        session.expunge_all()
        return rows


def event_types(job_id: str) -> list[str]:
    with db.session_scope() as session:
        return list(session.scalars(select(Event.type).where(Event.job_id == job_id).order_by(Event.seq)))


def ingest_messages(job_id: str) -> int:
    """How many ingest tasks for ``job_id`` the embedded broker holds."""
    broker = get_settings().data_dir / "broker.sqlite3"
    with sqlite3.connect(broker) as conn:
        rows = conn.execute(
            "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = ?",
            (queue.INGEST_QUEUE,),
        ).fetchall()
    return sum(job_id in json.dumps(json.loads(payload)) for (payload,) in rows)


def recorded(category: str) -> float:
    return REGISTRY.get_sample_value("pagemill_dead_letters_total", {"category": category}) or 0.0


def replay(dead_letter_id: str) -> DeadLetter:
    with db.session_scope() as session:
        row = service.replay(session, get_blob_store(), dead_letter_id, actor=OPERATOR)
        session.expunge(row)
        return row


def test_a_poison_page_fails_its_job_with_one_crash_dead_letter_and_a_replay_reads_it(tmp_path: Path) -> None:
    job_id = submitted(tmp_path, ["A page that crashed its worker three times"])
    counted = recorded("crash")

    crash_first_page(job_id)

    job = load(job_id)
    assert (job.state, job.error_code) == (JobState.FAILED, "WORKER_CRASHED")
    [letter] = dead_letters_of(job_id)
    assert (letter.category, letter.state, letter.pages) == ("crash", "open", [1])
    assert (letter.task_name, letter.task_args) == (queue.READ_PAGES, [queue.CPU_QUEUE])
    assert (letter.error_code, letter.attempts, letter.tenant_id) == ("WORKER_CRASHED", 3, "default")
    assert letter.traceback is None, "a killed worker leaves no traceback"
    assert recorded("crash") == counted + 1, "counted once its transaction committed"
    assert event_types(job_id).count("job.failed") == 1

    replayed = replay(letter.id)

    assert (replayed.state, replayed.replay_count, replayed.replayed_by) == ("replayed", 1, OPERATOR.subject)
    job = load(job_id)
    assert (job.state, job.error_code, job.attempts, job.finished_at) == (JobState.RUNNING, None, 0, None)
    assert (job.pages_done, job.pages_failed) == (0, 0)
    with db.session_scope() as session:
        page = repo.get_page(session, job_id, 0)
        assert page is not None
        assert (page.state, page.attempts, page.error_code) == (PageState.PENDING, 0, None)
        [entry] = [
            e for e in audit.list_events(session, action=audit.DEAD_LETTER_REPLAYED) if e.target == letter.id
        ]
        assert (entry.actor, entry.request_id, entry.details) == (
            OPERATOR.subject,
            "req-1",
            {"job_id": job_id, "category": "crash", "pages": [1]},
        )
    assert ingest_messages(job_id) == 1, "the work was sent again after commit"

    # The worker takes it up again: the fix is in, the page reads, the job succeeds.
    processing.ingest_job(job_id)
    page_work.read_next(queue.CPU_QUEUE)
    job = load(job_id)
    assert (job.state, job.pages_done, job.pages_failed) == (JobState.SUCCEEDED, 1, 0)
    types = event_types(job_id)
    assert types.count("job.failed") == 1 and types[-1] == "job.succeeded"
    assert types.count("job.started") == 2, "job.started again when the replayed job was taken up"
    assert types.index("job.failed") < len(types) - 1 - types[::-1].index("job.started")

    with pytest.raises(ReplayNotAllowed) as again:
        replay(letter.id)
    assert again.value.details["reason"] == "replayed"


def test_pages_failing_the_same_way_share_a_row_that_reopens_after_a_failed_replay(tmp_path: Path) -> None:
    job_id = submitted(tmp_path, ["one", "two", "three", "four"])
    processing.ingest_job(job_id)
    timeout = ProcessingTimeout(kind="text_chunk", limit_s=60.0)
    page_work._save(job_id, None, [(0, None, timeout), (1, None, WorkerCrashed(attempts=3))])
    page_work._save(job_id, None, [(2, None, ProcessingTimeout(kind="text_chunk", limit_s=60.0))])
    page_work._save(job_id, None, [(3, None, EncryptedFile())])  # the client's: no dead letter
    by_category = {row.category: row for row in dead_letters_of(job_id)}
    assert set(by_category) == {"timeout", "crash"}
    assert (by_category["timeout"].pages, by_category["timeout"].failures) == ([1, 3], 2)
    assert by_category["crash"].pages == [2]
    processing.finalize_job(job_id)
    assert load(job_id).state == JobState.FAILED

    replay(by_category["timeout"].id)
    reopened_before = recorded("timeout")
    page_work._save(job_id, None, [(2, None, ProcessingTimeout(kind="text_chunk", limit_s=60.0))])
    [row] = [row for row in dead_letters_of(job_id) if row.category == "timeout"]
    assert (row.state, row.pages, row.failures, row.replay_count) == ("open", [3], 3, 1)
    assert recorded("timeout") == reopened_before + 1

    # A save that lost its race (another delivery finished the page first) records nothing.
    page_work._save(job_id, None, [(2, None, CorruptFile())])
    assert {row.category for row in dead_letters_of(job_id)} == {"timeout", "crash"}


def test_job_failures_are_dead_letters_by_error_class(tmp_path: Path) -> None:
    decode = submitted(tmp_path, ["x"])
    client = submitted(tmp_path, ["x"])
    for job_id in (decode, client):
        with db.session_scope() as session:
            repo.start_job(session, job_id)
    processing.fail_job(decode, CorruptFile())
    processing.fail_job(client, EncryptedFile())
    processing.fail_job(decode, CorruptFile())  # final already: nothing more
    [letter] = dead_letters_of(decode)
    assert (letter.category, letter.pages, letter.task_name, letter.task_args) == (
        "decode",
        [],
        queue.INGEST_JOB,
        [decode],
    )
    assert dead_letters_of(client) == []
    assert event_types(decode).count("job.failed") == 1

    # A job-level dead letter replays by opening the document again (its attempts fresh).
    replay(letter.id)
    job = load(decode)
    assert (job.state, job.attempts, job.pages_total) == (JobState.RUNNING, 0, None)
    processing.ingest_job(decode)
    page_work.read_next(queue.CPU_QUEUE)
    assert load(decode).state == JobState.SUCCEEDED


def test_a_job_the_sweeper_gives_up_is_a_dead_letter_with_its_pending_pages(tmp_path: Path) -> None:
    job_id = submitted(tmp_path, ["one", "two", "three"])
    processing.ingest_job(job_id)
    page_work._save(job_id, None, [(0, None, WorkerCrashed(attempts=3))])
    assert sweeper.give_up(job_id, ProcessingTimeout(deadline_s=86_400))
    rows = {row.category: row for row in dead_letters_of(job_id)}
    assert rows["timeout"].pages == [2, 3]
    assert (rows["timeout"].task_name, rows["timeout"].error_code) == (
        queue.SWEEP_STALLED,
        "PROCESSING_TIMEOUT",
    )
    assert rows["crash"].pages == [1]


def test_replays_that_cannot_run_are_refused_with_their_reason(tmp_path: Path) -> None:
    def failed_job(**fields: object) -> tuple[str, str]:
        job_id = submitted(tmp_path, ["x"])
        processing.ingest_job(job_id)
        if fields:
            with db.session_scope() as session:
                session.execute(update(Job).where(Job.id == job_id).values(**fields))
        page_work._save(job_id, None, [(0, None, WorkerCrashed(attempts=3))])
        processing.finalize_job(job_id)
        [row] = dead_letters_of(job_id)
        return job_id, row.id

    def refused(dead_letter_id: str) -> tuple[str, str]:
        with pytest.raises((ReplayNotAllowed, ReplaySourceGone)) as raised:
            replay(dead_letter_id)
        return raised.value.code, str(raised.value.details["reason"])

    purged, purged_letter = failed_job()
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == purged).values(state=JobState.EXPIRED, purged=True))
    assert refused(purged_letter) == ("REPLAY_SOURCE_GONE", "purged")

    missing, missing_letter = failed_job()
    get_blob_store().delete_prefix(f"jobs/{missing}/")
    assert refused(missing_letter) == ("REPLAY_SOURCE_GONE", "source_missing")

    # Sealed while it ran, wiped when it ended: the document cannot be opened again.
    _, sealed_letter = failed_job(document_password_sealed="sealed-while-running")
    assert refused(sealed_letter) == ("REPLAY_SOURCE_GONE", "password_wiped")

    active, active_letter = failed_job()
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == active).values(state=JobState.RUNNING))
    assert refused(active_letter) == ("REPLAY_NOT_ALLOWED", "job_active")

    with pytest.raises(NotFound):
        replay(str(uuid.uuid4()))
    assert all(row.state == "open" for row in dead_letters_of(missing)), "a refusal changes nothing"


def test_bulk_replay_takes_a_bounded_number_oldest_first_and_reports_the_rest(tmp_path: Path) -> None:
    jobs = []
    for _ in range(3):
        job_id = submitted(tmp_path, ["x"])
        processing.ingest_job(job_id)
        page_work._save(job_id, None, [(0, None, WorkerCrashed(attempts=3))])
        processing.finalize_job(job_id)
        jobs.append(job_id)
    get_blob_store().delete_prefix(f"jobs/{jobs[0]}/")  # the oldest cannot run again

    with db.session_scope() as session:
        outcome = service.replay_category(
            session, get_blob_store(), category="crash", actor=OPERATOR, limit=2
        )
        replayed_jobs = [row.job_id for row in outcome.replayed]
        skipped = [(row_id, error.code) for row_id, error in outcome.skipped]
        remaining = outcome.remaining
    assert replayed_jobs == [jobs[1]]
    assert skipped == [(dead_letters_of(jobs[0])[0].id, "REPLAY_SOURCE_GONE")]
    assert remaining == 1, "the third is left for the next call"
    assert load(jobs[1]).state == JobState.RUNNING and load(jobs[2]).state == JobState.FAILED


def test_listing_filters_and_pages_newest_failure_first(tmp_path: Path) -> None:
    ids = []
    for tenant in ("default", "default", "default"):
        job_id = submitted(tmp_path, ["x"], tenant=tenant)
        processing.ingest_job(job_id)
        page_work._save(job_id, None, [(0, None, WorkerCrashed(attempts=3))])
        ids.append(dead_letters_of(job_id)[0].id)
    expired_job = submitted(tmp_path, ["x"])
    processing.ingest_job(expired_job)
    page_work._save(expired_job, None, [(0, None, ProcessingTimeout(kind="text_chunk"))])
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == expired_job).values(state=JobState.EXPIRED))

    with db.session_scope() as session:
        first, cursor = service.list_dead_letters(session, limit=2, cursor=None, category="crash")
        assert [row.id for row in first] == [ids[2], ids[1]] and cursor is not None
        second, last = service.list_dead_letters(session, limit=2, cursor=cursor, category="crash")
        assert [row.id for row in second] == [ids[0]] and last is None
        assert len(service.list_dead_letters(session, limit=10, cursor=None, state="open")[0]) == 4
        assert service.list_dead_letters(session, limit=10, cursor=None, tenant_id="nobody")[0] == []
        # The gauge counts what can still run: not the dead letters of an expired job.
        assert service.open_counts(session) == {
            "crash": 3,
            "decode": 0,
            "engine": 0,
            "other": 0,
            "timeout": 0,
        }


def test_a_purge_keeps_the_dead_letter_but_not_its_traceback(tmp_path: Path) -> None:
    job_id = submitted(tmp_path, ["x"])
    processing.ingest_job(job_id)
    try:
        raise ValueError("a parser quoting the document: CONFIDENTIAL")
    except ValueError as exc:
        error = ProcessingError("This page could not be read.", page=1)
        error.__cause__ = exc
    page_work._save(job_id, None, [(0, None, error)])
    processing.finalize_job(job_id)
    [letter] = dead_letters_of(job_id)
    assert letter.category == "decode" and letter.traceback and "CONFIDENTIAL" in letter.traceback

    with db.session_scope() as session:
        assert retention_repo.expire_jobs(session, [job_id], utcnow(), purged=True) == [job_id]

    [after] = dead_letters_of(job_id)
    assert (after.id, after.traceback, after.error_details) == (letter.id, None, None)
    with pytest.raises(ReplaySourceGone):
        replay(letter.id)
