"""The page's time limit: soft (the budget every call gets) and hard (an alarm in the main thread)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from pagemill import deadlines
from pagemill.deadlines import HardTimeLimitExceeded
from pagemill.errors import ProcessingTimeout


def test_without_a_deadline_calls_keep_their_own_timeouts() -> None:
    assert deadlines.current() is None
    assert deadlines.budget(180.0) == 180.0
    deadlines.check()
    assert not deadlines.spent()


def test_within_a_deadline_a_call_gets_at_most_what_is_left() -> None:
    with deadlines.limited("document_page", 30.0, 60.0) as deadline:
        assert deadlines.current() is deadline
        assert 29.0 < deadlines.budget(180.0) <= 30.0
        assert deadlines.budget(5.0) == 5.0
    assert deadlines.current() is None


def test_a_spent_deadline_raises_its_processing_timeout() -> None:
    with deadlines.limited("image_page", 0.01, 5.0):
        time.sleep(0.02)
        assert deadlines.spent()
        with pytest.raises(ProcessingTimeout) as raised:
            deadlines.budget(180.0)
        with pytest.raises(ProcessingTimeout):
            deadlines.check()
    assert raised.value.details == {"kind": "image_page", "limit_s": 0.01}
    assert "0.01 s" in raised.value.message


def test_the_hard_alarm_interrupts_work_that_takes_no_timeout() -> None:
    before = signal.getsignal(signal.SIGALRM)
    pending_before = signal.getitimer(signal.ITIMER_REAL)[0]
    started = time.monotonic()
    with (
        deadlines.limited("text_chunk", 0.05, 0.2) as deadline,
        pytest.raises(HardTimeLimitExceeded),
        deadline.alarm(),
    ):
        time.sleep(5)  # a pdfium call that does not return, say
    assert 0.15 < time.monotonic() - started < 2.0
    assert signal.getsignal(signal.SIGALRM) is before, "the previous handler is back"
    pending_after = signal.getitimer(signal.ITIMER_REAL)[0]
    # pytest-timeout's alarm (if armed) runs on with what was left of it.
    assert (pending_after > 0) == (pending_before > 0)


def test_no_alarm_is_left_behind_when_the_work_ends_in_time() -> None:
    with deadlines.limited("text_chunk", 0.05, 0.3) as deadline:
        with deadline.alarm():
            time.sleep(0.01)
        time.sleep(0.4)  # past the hard limit, outside the guarded block: nothing goes off
    with deadlines.limited("text_chunk", 0.05, 0.01) as deadline, pytest.raises(HardTimeLimitExceeded):
        time.sleep(0.02)
        with deadline.alarm():  # already past it: raised at once
            pass


def test_an_earlier_alarm_of_someone_else_is_left_alone() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    previous_timer = signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with deadlines.limited("document_page", 1.0, 2.0) as deadline, deadline.alarm():
            time.sleep(0.3)
        assert fired == [signal.SIGALRM], "theirs went off, ours was never armed"
    finally:
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, *previous_timer)


def test_outside_the_main_thread_only_the_soft_limit_applies() -> None:
    outcome: list[str] = []

    def work() -> None:
        with deadlines.limited("document_page", 0.05, 0.1) as deadline, deadline.alarm():
            time.sleep(0.3)
            outcome.append("ran to its end")
            outcome.append("spent" if deadline.spent() else "in time")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert outcome == ["ran to its end", "spent"]
    assert deadlines.current() is None, "each thread has its own deadline"
