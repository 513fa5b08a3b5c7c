"""The ETA arithmetic: pages ahead under the fair scheduler, a pool's rate, the estimate in seconds."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from pagemill.jobs.progress import (
    MIN_RATE_SPAN_S,
    RATE_WINDOW_S,
    QueueLoad,
    eta_seconds,
    expected_queues,
    pages_ahead,
    pool_rate,
)
from pagemill.jobs.progress_repository import QueueThroughput, WaitingJob
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from tests.support.factories import make_job

T0 = utcnow()
JOB = make_job(tenant_id="acme", priority=1, created_at=T0)


def waiting(priority: int, tenant: str, pages: int, *, older: bool = False) -> WaitingJob:
    """A job with ``pages`` waiting, submitted before ``JOB`` when ``older`` (after it otherwise)."""
    created = T0 + timedelta(seconds=-5 if older else 5)
    return WaitingJob(str(uuid.uuid4()), tenant, priority, created, pages)


def test_nothing_waiting_is_nothing_ahead() -> None:
    assert pages_ahead(JOB, 10, []) == 0


def test_every_page_of_a_higher_priority_is_ahead() -> None:
    assert pages_ahead(JOB, 10, [waiting(2, "other", 500), waiting(3, "acme", 7)]) == 507


def test_a_lower_priority_waits() -> None:
    assert pages_ahead(JOB, 10, [waiting(0, "other", 500)]) == 0


def test_the_tenants_older_jobs_go_first_and_its_newer_ones_after() -> None:
    rows = [waiting(1, "acme", 30, older=True), waiting(1, "acme", 40, older=False)]
    assert pages_ahead(JOB, 10, rows) == 30


def test_other_tenants_of_the_priority_take_turns() -> None:
    # The job's tenant needs 5 (older) + 10 (own) turns: a big tenant gets as many, a small one its pages.
    rows = [
        waiting(1, "acme", 5, older=True),
        waiting(1, "big", 1000),
        waiting(1, "small", 3),
    ]
    assert pages_ahead(JOB, 10, rows) == 5 + 15 + 3


def test_a_job_whose_pages_are_not_known_counts_one_turn() -> None:
    assert pages_ahead(JOB, 0, [waiting(1, "big", 1000), waiting(1, "small", 3)]) == 2


def test_the_job_itself_is_not_ahead_of_itself() -> None:
    own = WaitingJob(JOB.id, "acme", 1, T0, 10)
    assert pages_ahead(JOB, 10, [own]) == 0


def test_a_tie_in_time_is_broken_by_id_as_the_scheduler_does() -> None:
    before = WaitingJob("0" * 36, "acme", 1, T0, 3)
    after = WaitingJob("f" * 36, "acme", 1, T0, 4)
    assert pages_ahead(JOB, 10, [before, after]) == 3


def test_rows_of_one_tenant_on_several_priorities_add_up() -> None:
    rows = [waiting(1, "big", 4), waiting(1, "big", 4), waiting(5, "big", 2)]
    assert pages_ahead(JOB, 10, rows) == 2 + 8


def throughput(pages: int, seconds_ago: float) -> QueueThroughput:
    return QueueThroughput(
        queue="cpu", pages=pages, first_finished_at=utcnow() - timedelta(seconds=seconds_ago)
    )


def test_the_rate_is_pages_over_the_time_since_the_first() -> None:
    now = utcnow()
    rate = pool_rate(QueueThroughput("cpu", 30, now - timedelta(seconds=20)), now)
    assert rate == pytest.approx(1.5)


def test_a_page_read_a_moment_ago_is_not_a_burst() -> None:
    now = utcnow()
    assert pool_rate(QueueThroughput("cpu", 1, now - timedelta(seconds=0.01)), now) == pytest.approx(
        1 / MIN_RATE_SPAN_S
    )


def test_the_rate_is_measured_over_the_window_at_most() -> None:
    now = utcnow()
    rate = pool_rate(QueueThroughput("cpu", 120, now - timedelta(seconds=300)), now)
    assert rate == pytest.approx(120 / RATE_WINDOW_S)


def test_no_page_read_is_no_rate() -> None:
    assert pool_rate(None, utcnow()) is None
    assert pool_rate(throughput(0, 10), utcnow()) is None


def test_eta_is_pages_ahead_and_own_over_the_rate() -> None:
    assert eta_seconds([QueueLoad("cpu", own_pages=10, ahead=20, pages_per_s=2.0)]) == 15.0


def test_eta_is_the_slowest_queue() -> None:
    loads = [
        QueueLoad("cpu", own_pages=10, ahead=0, pages_per_s=10.0),
        QueueLoad("gpu", own_pages=4, ahead=16, pages_per_s=0.5),
    ]
    assert eta_seconds(loads) == 40.0


def test_eta_is_unknown_when_a_queue_holding_pages_has_no_rate() -> None:
    loads = [QueueLoad("cpu", 10, 0, 10.0), QueueLoad("gpu", 1, 0, None)]
    assert eta_seconds(loads) is None


def test_a_queue_without_own_pages_does_not_count() -> None:
    loads = [QueueLoad("cpu", 10, 0, 5.0), QueueLoad("gpu", 0, 1000, None)]
    assert eta_seconds(loads) == 2.0


def test_eta_is_rounded_to_a_tenth() -> None:
    assert eta_seconds([QueueLoad("cpu", 1, 0, 3.0)]) == 0.3


@pytest.mark.usefixtures("clean_env")
def test_an_unplanned_job_waits_on_the_cpu_queue_and_its_engines_pool() -> None:
    settings = Settings()
    assert expected_queues(make_job(options={"formats": ["markdown"]}), settings) == ["cpu"]
    vllm = make_job(options={"formats": ["markdown"], "engine": "vllm"})
    assert expected_queues(vllm, settings) == ["cpu", "gpu"]
