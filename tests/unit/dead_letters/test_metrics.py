"""The pagemill_dead_letters gauge: read at most once per TTL, left out when it cannot be read."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from pagemill.dead_letters.metrics import OpenDeadLetters


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_are_read_once_per_ttl_and_shown_by_category() -> None:
    reads: list[int] = []

    def read() -> dict[str, int]:
        reads.append(1)
        return {"crash": 2, "decode": 0, "engine": 0, "other": 0, "timeout": len(reads)}

    clock = Clock()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OpenDeadLetters(read, ttl_s=5.0, clock=clock))
    first = generate_latest(registry).decode()
    assert 'pagemill_dead_letters{category="crash"} 2.0' in first
    assert 'pagemill_dead_letters{category="timeout"} 1.0' in first
    assert "# TYPE pagemill_dead_letters gauge" in first
    generate_latest(registry)
    assert len(reads) == 1, "a second scrape within the TTL costs no query"
    clock.now += 5.0
    assert 'pagemill_dead_letters{category="timeout"} 2.0' in generate_latest(registry).decode()


def test_a_database_that_does_not_answer_leaves_the_gauge_out() -> None:
    def read() -> dict[str, int]:
        raise ConnectionError("database down")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(OpenDeadLetters(read, clock=Clock()))
    assert "pagemill_dead_letters" not in generate_latest(registry).decode()
