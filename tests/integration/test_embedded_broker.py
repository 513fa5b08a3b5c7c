"""The embedded broker's transport on a real SQLite file: messages in order, deleted on delivery, nothing
missed after the queue was seen empty (a publish from another connection), and an idle poll that does not
query the queue."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Connection

from pagemill import embedded_broker
from pagemill.queue import make_celery
from pagemill.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celery]:
    """The Celery app of an embedded data folder (its broker file in ``tmp_path``)."""
    celery = make_celery(Settings(data_dir=tmp_path))
    yield celery
    celery.close()


def rows(tmp_path: Path) -> list[tuple[int, int]]:
    """(visible, count) of the broker file's messages."""
    with sqlite3.connect(tmp_path / "broker.sqlite3") as connection:
        return connection.execute("SELECT visible, count(*) FROM kombu_message GROUP BY visible").fetchall()


def test_sqla_urls_use_the_embedded_transport(app: Celery) -> None:
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, embedded_broker.Transport)
        assert connection.transport.polling_interval == embedded_broker.POLLING_INTERVAL_S


def test_messages_come_in_order_and_leave_the_file_when_delivered(app: Celery, tmp_path: Path) -> None:
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("cpu")
        for number in range(5):
            queue.put({"n": number})
        assert rows(tmp_path) == [(1, 5)]
        taken = []
        for _ in range(5):
            message = queue.get(timeout=2)
            taken.append(message.payload["n"])
            message.ack()
        queue.close()
    assert taken == [0, 1, 2, 3, 4]
    assert rows(tmp_path) == []


def test_each_message_goes_to_its_own_queue(app: Celery, tmp_path: Path) -> None:
    # The transport remembers each queue's id after its first message: interleaved publishes to two queues
    # (the first of each creating it) must still land apart.
    with app.connection_for_write() as connection:
        queues = {name: connection.SimpleQueue(name) for name in ("cpu", "ingest")}
        for number in range(3):
            for name, queue in queues.items():
                queue.put({"queue": name, "n": number})
        for name, queue in queues.items():
            taken = []
            for _ in range(3):
                message = queue.get(timeout=2)
                taken.append((message.payload["queue"], message.payload["n"]))
                message.ack()
            queue.close()
            assert taken == [(name, 0), (name, 1), (name, 2)]
    assert rows(tmp_path) == []


def test_delivered_messages_an_earlier_version_kept_are_deleted(app: Celery, tmp_path: Path) -> None:
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("cpu")
        queue.put({"n": 1})
        queue.put({"n": 2})
        queue.close()
    with sqlite3.connect(tmp_path / "broker.sqlite3") as db:  # as kombu's own transport leaves a delivery
        db.execute("UPDATE kombu_message SET visible = 0 WHERE id = (SELECT min(id) FROM kombu_message)")
    with Connection(app.conf.broker_url) as connection:
        queue = connection.SimpleQueue("cpu")
        message = queue.get(timeout=2)
        message.ack()
        queue.close()
    assert message.payload == {"n": 2}
    assert rows(tmp_path) == []


def test_a_message_published_after_an_empty_poll_is_delivered(app: Celery) -> None:
    with (
        Connection(app.conf.broker_url) as consumer_connection,
        Connection(app.conf.broker_url) as producer_connection,
    ):
        consumer = consumer_connection.SimpleQueue("gpu")
        with pytest.raises(consumer.Empty):
            consumer.get(timeout=0.2)  # seen empty: polls are answered from the data version now
        publisher = threading.Timer(0.3, lambda: producer_connection.SimpleQueue("gpu").put({"late": True}))
        publisher.start()
        started = time.monotonic()
        message = consumer.get(timeout=5)
        waited = time.monotonic() - started
        message.ack()
        publisher.join()
        consumer.close()
    assert message.payload == {"late": True}
    assert waited < 2, waited


def test_an_idle_poll_does_not_query_the_queue(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    queried: list[str] = []
    take = embedded_broker.Channel._take

    def counting_take(self: embedded_broker.Channel, queue: str) -> Any:
        queried.append(queue)
        return take(self, queue)

    monkeypatch.setattr(embedded_broker.Channel, "_take", counting_take)
    with Connection(app.conf.broker_url) as connection:
        consumer = connection.SimpleQueue("ingest")
        with pytest.raises(consumer.Empty):
            consumer.get(timeout=0.5)
        consumer.close()
    # 0.5 s at one poll per 20 ms is ~25 polls: the queue was queried when first seen, and once more at
    # most for the file's own first writes (the queue's row), not at every poll.
    assert 1 <= len(queried) <= 3, queried


@pytest.mark.parametrize("flag", ["should_stop", "should_terminate"])
def test_a_wait_for_messages_ends_when_the_worker_is_asked_to_stop(
    app: Celery, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    # Celery's loop for polling transports waits in drain_events before it looks at a SIGTERM. A warm stop's
    # flag is its exit code, 0, so the check must not read 0 as "not asked".
    with Connection(app.conf.broker_url) as connection:
        consumer = connection.SimpleQueue("cpu")
        consumer.consumer.consume()
        answers: list[BaseException] = []

        def drain_without_a_deadline() -> None:
            try:
                connection.drain_events(timeout=None)  # without the check: waits for a message forever
            except BaseException as exc:  # the test reads what ended the wait
                answers.append(exc)

        waiting = threading.Thread(target=drain_without_a_deadline, daemon=True)
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive(), answers  # no message, no stop yet: still waiting
        monkeypatch.setattr(embedded_broker.worker_state, flag, 0)
        waiting.join(30)
        consumer.close()
    assert not waiting.is_alive()
    assert len(answers) == 1 and isinstance(answers[0], TimeoutError), answers
