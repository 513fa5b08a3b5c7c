"""Page claims and the fair scheduler on real migrated databases (SQLite and Postgres).

Each step runs in its own committed transaction, as workers use them: fencing and fairness are tested across
transactions. No worker runs; the tests play the workers, their deaths and the clock.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from pagemill import db, queue
from pagemill.jobs import claim_repository as claims_repo
from pagemill.jobs import claims
from pagemill.jobs import repository as repo
from pagemill.jobs.sweeper import release_lapsed_claims, resend_orphaned_pages
from pagemill.models import Job, JobState, Page, PageState
from pagemill.models.base import utcnow
from pagemill.settings import Settings, WorkerSettings, get_settings
from pagemill.tenancy.repository import ensure_tenant
from tests.support.factories import make_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

CPU = "cpu"


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> str:
    with db.session_scope() as session:
        session.execute(delete(Page))
        session.execute(delete(Job))
    return database


@pytest.fixture
def settings() -> Settings:
    base = get_settings()
    worker = WorkerSettings(pages_per_task=4, claim_ttl_s=30, max_attempts=3)
    return base.model_copy(update={"worker": worker})


def add_job(pages: int, *, tenant: str = "default", priority: int = 0, ocr: bool = False) -> str:
    """A running job of ``tenant`` with ``pages`` pending pages on the cpu queue; its id."""
    job_id = str(uuid.uuid4())
    with db.session_scope() as session:
        if tenant != "default":
            ensure_tenant(session, tenant, tier="enterprise")
        repo.add_job(session, make_job(job_id, tenant_id=tenant, priority=priority, state=JobState.RUNNING))
    with db.session_scope() as session:
        repo.set_planned(session, job_id, pages, list(range(pages)))
        session.execute(update(Page).where(Page.job_id == job_id).values(queue=CPU, ocr=ocr))
    return job_id


def claim(settings: Settings) -> claims_repo.ClaimedPages | None:
    return claims.claim_next(CPU, settings)


def finish(claimed: claims_repo.ClaimedPages) -> None:
    rows = [
        {"index": index, "text": "t", "markdown": "t", "engine": "text_layer"} for index in claimed.indices
    ]
    with db.session_scope() as session:
        repo.finish_pages(session, claimed.job_id, PageState.DONE, rows, claim_id=claimed.claim_id)


def page_states(job_id: str) -> dict[int, str]:
    with db.session_scope() as session:
        rows = session.execute(select(Page.index, Page.state).where(Page.job_id == job_id)).all()
    return {int(index): str(state) for index, state in rows}


def test_text_pages_are_claimed_in_chunks_once_each(settings: Settings) -> None:
    job_id = add_job(10)
    taken = [claim(settings) for _ in range(3)]
    assert [c.indices for c in taken if c] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert claim(settings) is None, "a duplicate task finds nothing to do"
    assert all(c is not None and c.job_id == job_id and not c.ocr for c in taken)


def test_the_last_pages_of_a_big_job_are_shared_out_so_its_workers_end_together(settings: Settings) -> None:
    wide = settings.model_copy(update={"worker": settings.worker.model_copy(update={"pages_per_task": 32})})
    job_id = add_job(100)
    sizes = []
    while (taken := claims.claim_next(CPU, wide)) is not None:
        sizes.append(len(taken.indices))
    # Two full claims while 64 or more are left, then half of the 36 left, then the last 18 whole.
    assert sizes == [32, 32, 18, 18]
    assert page_states(job_id) == {i: "pending" for i in range(100)}
    small = add_job(30)
    whole = claims.claim_next(CPU, wide)
    assert whole is not None and whole.job_id == small and len(whole.indices) == 30, "one claim's worth"


@pytest.mark.parametrize(
    ("left", "share"),
    [(1000, 128), (256, 128), (255, 128), (232, 116), (116, 58), (58, 29), (33, 17), (32, 32), (5, 5)],
)
def test_tail_share(left: int, share: int) -> None:
    assert claims_repo.tail_share(left, 128) == share


def test_ocr_pages_are_claimed_one_at_a_time(settings: Settings) -> None:
    add_job(3, ocr=True)
    assert [c.indices for c in (claim(settings), claim(settings)) if c] == [[0], [1]]


def test_a_small_job_of_another_tenant_is_served_next_not_after_the_big_one(settings: Settings) -> None:
    big = add_job(400, tenant="big-tenant")
    first = claim(settings)
    assert first is not None and first.job_id == big
    small = add_job(1, tenant="small-tenant")
    second = claim(settings)
    assert second is not None and second.job_id == small, "the tenant holding nothing goes first"


def test_two_busy_tenants_are_served_in_turn(settings: Settings) -> None:
    a, b = add_job(40, tenant="tenant-a"), add_job(40, tenant="tenant-b")
    served = []
    for _ in range(6):
        claimed = claim(settings)
        assert claimed is not None
        served.append(claimed.job_id)
        finish(claimed)  # one worker: each claim is finished before the next
    assert served[:2] in ([a, b], [b, a])
    assert served == [served[0], served[1]] * 3, "round robin between tenants"


def test_priority_comes_before_fairness(settings: Settings) -> None:
    add_job(8, tenant="tenant-a", priority=0)
    urgent = add_job(8, tenant="tenant-b", priority=9)
    assert [c.job_id for c in (claim(settings), claim(settings)) if c] == [urgent, urgent]


def test_a_lapsed_claim_is_offered_again_and_its_old_holder_commits_nothing(settings: Settings) -> None:
    job_id = add_job(2)
    old = claim(settings)
    assert old is not None and old.indices == [0, 1]
    with db.session_scope() as session:
        session.execute(update(Page).values(claim_expires_at=utcnow() - timedelta(seconds=1)))
    assert release_lapsed_claims() == 2
    new = claims.claim_next(CPU, settings.model_copy(update={"worker": WorkerSettings(pages_per_task=1)}))
    assert new is not None and new.indices == [0] and new.pages == [(0, 1)], "retried pages go one by one"
    finish(old)  # the old holder wakes up and writes: fenced out
    assert page_states(job_id) == {0: "pending", 1: "pending"}
    finish(new)
    assert page_states(job_id) == {0: "done", 1: "pending"}


def test_a_claim_is_given_back_at_its_end_unless_the_reader_settled_it(settings: Settings) -> None:
    job_id = add_job(8)
    settled = claim(settings)
    assert settled is not None and settled.indices == [0, 1, 2, 3]
    with claims.holding(settled, settings) as hold:
        finish(settled)
        hold.settled = True
    assert page_states(job_id) == {i: "done" if i < 4 else "pending" for i in range(8)}
    # Settled means nothing was left to give back, so no statement looks: a page left claimed here (which a
    # reader never does) stays claimed until its claim lapses.
    left = claim(settings)
    assert left is not None and left.indices == [4, 5, 6, 7]
    with claims.holding(left, settings) as hold:
        hold.settled = True
    assert held_by(job_id) == {index: left.claim_id for index in left.indices}

    other = add_job(4)
    unsettled = claim(settings)
    assert unsettled is not None and unsettled.job_id == other
    with claims.holding(unsettled, settings):
        pass  # the reader stopped early: its pages go back
    assert held_by(other) == {} and page_states(other) == {i: "pending" for i in range(4)}


def held_by(job_id: str) -> dict[int, str]:
    with db.session_scope() as session:
        rows = session.execute(
            select(Page.index, Page.claim_id).where(Page.job_id == job_id, Page.claim_id.is_not(None))
        ).all()
    return {int(index): str(claim_id) for index, claim_id in rows}


def test_the_pages_of_a_dead_process_on_this_host_are_offered_at_once(settings: Settings) -> None:
    add_job(1, ocr=True)
    claimed = claim(settings)
    assert claimed is not None
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    holder = f"{claims.worker_name().rsplit(':', 1)[0]}:{int(dead.stdout)}"
    with db.session_scope() as session:
        session.execute(update(Page).values(claimed_by=holder))
    assert release_lapsed_claims() == 1, "released although the claim has not expired"
    again = claim(settings)
    assert again is not None and again.indices == [0]


def test_a_live_holder_keeps_its_claim(settings: Settings) -> None:
    add_job(1, ocr=True)
    assert claim(settings) is not None
    assert release_lapsed_claims() == 0
    assert claim(settings) is None


def test_the_heartbeat_renews_held_claims_and_reports_lost_ones(settings: Settings) -> None:
    add_job(2, ocr=True)
    kept, lost = claim(settings), claim(settings)
    assert kept is not None and lost is not None
    heartbeat = claims.Heartbeat()
    with db.session_scope() as session:
        session.execute(update(Page).values(claim_expires_at=utcnow() + timedelta(seconds=1)))
        claims_repo.release_claim(session, lost.claim_id)
    heartbeat._held = {kept.claim_id: 30, lost.claim_id: 30}
    heartbeat.renew({kept.claim_id: 30, lost.claim_id: 30})
    assert heartbeat.lost(lost.claim_id) and not heartbeat.lost(kept.claim_id)
    with db.session_scope() as session:
        expiry = session.scalar(select(Page.claim_expires_at).where(Page.claim_id == kept.claim_id))
    assert expiry is not None and expiry > utcnow() + timedelta(seconds=25)


def test_a_page_at_its_attempt_limit_is_not_counted_again(settings: Settings) -> None:
    job_id = add_job(1, ocr=True)
    with db.session_scope() as session:
        session.execute(update(Page).where(Page.job_id == job_id).values(attempts=3))
    claimed = claim(settings)
    assert claimed is not None and claimed.pages == [(0, 3)]
    with db.session_scope() as session:
        assert session.scalar(select(Page.attempts).where(Page.job_id == job_id)) == 3


def test_concurrent_claimers_never_share_a_page(settings: Settings) -> None:
    job_ids = [add_job(12, tenant=f"tenant-{n}") for n in range(3)]
    one_each = settings.model_copy(update={"worker": WorkerSettings(pages_per_task=1)})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: claims.claim_next(CPU, one_each), range(36)))
    taken = [(c.job_id, i) for c in results if c is not None for i in c.indices]
    assert len(taken) == len(set(taken)) == 36
    assert {job_id for job_id, _ in taken} == set(job_ids)


def test_a_cancelled_or_final_job_offers_nothing(settings: Settings) -> None:
    job_id = add_job(2)
    with db.session_scope() as session:
        repo.finish_job(session, job_id, JobState.FAILED)
    assert claim(settings) is None


def _purge(queue_name: str) -> None:
    with queue.get_celery().connection_for_write() as connection:
        connection.default_channel.queue_purge(queue_name)


def test_pages_whose_messages_were_lost_get_new_ones_once(settings: Settings) -> None:
    """A broker restarted empty: claimable pages and no message on their queue. One sweep sends a task per
    unit of work; the next sends none while those wait."""
    add_job(10)  # three chunks of four text pages
    add_job(2, ocr=True)  # two OCR pages, one task each
    _purge(CPU)
    assert queue.waiting_messages(CPU) == 0
    assert resend_orphaned_pages(settings) == 5
    assert queue.waiting_messages(CPU) == 5
    assert resend_orphaned_pages(settings) == 0, "messages are waiting: nothing more is sent"
    _purge(CPU)


def test_a_job_queued_for_a_minute_with_no_ingest_message_is_sent_again(settings: Settings) -> None:
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    with db.session_scope() as session:
        repo.add_job(session, make_job(old, created_at=utcnow() - timedelta(minutes=2)))
        repo.add_job(session, make_job(new))
    _purge(queue.INGEST_QUEUE)
    _purge(CPU)
    assert resend_orphaned_pages(settings) == 1, "only the job queued for over a minute"
    assert queue.waiting_messages(queue.INGEST_QUEUE) == 1
    assert resend_orphaned_pages(settings) == 0, "its message waits: nothing more is sent"
    _purge(queue.INGEST_QUEUE)
