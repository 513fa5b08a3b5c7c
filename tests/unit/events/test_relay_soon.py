"""relay_soon: a wake-up that finds a pass of the process running asks it for one more pass, and returns."""

from __future__ import annotations

import threading

import pytest

from pagemill.events import relay


def test_a_wakeup_during_a_pass_makes_the_running_one_pass_again(monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[int] = []
    inside = threading.Event()
    release = threading.Event()

    def a_pass(settings: object = None) -> int:
        passes.append(1)
        if len(passes) == 1:
            inside.set()
            assert release.wait(5)
        return 1

    monkeypatch.setattr(relay, "relay_pending", a_pass)
    results: list[int] = []
    running = threading.Thread(target=lambda: results.append(relay.relay_soon()))
    running.start()
    assert inside.wait(5)
    assert relay.relay_soon() == 0  # returns at once: the running pass will do its work
    assert relay.relay_soon() == 0  # wake-ups while it runs add one pass, not one each
    release.set()
    running.join(5)
    assert results == [2] and len(passes) == 2
    assert relay.relay_soon() == 1  # nothing running: this call passes itself


def test_a_failed_pass_does_not_leave_the_relay_marked_running(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(settings: object = None) -> int:
        raise RuntimeError("database down")

    monkeypatch.setattr(relay, "relay_pending", failing)
    with pytest.raises(RuntimeError):
        relay.relay_soon()
    monkeypatch.setattr(relay, "relay_pending", lambda settings=None: 3)
    assert relay.relay_soon() == 3
