"""Enqueue-after-commit on a real Redis broker: published on commit, dropped on rollback, one queue each,
higher priorities first.

Kombu's Redis transport keeps each queue as Redis lists (LPUSH to publish, BRPOP to consume): one per
priority step, the first named after the queue and the others ``<queue>\\x06\\x16<step>``; a worker
takes from them in step order. The lists are read directly: no worker takes part.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.transport.redis import PRIORITY_STEPS
from sqlalchemy import text
from sqlalchemy.orm import Session

from pagemill import db, queue
from pagemill.settings import get_settings
from tests.support.engines import forget_engine

pytestmark = pytest.mark.integration

Message = tuple[str, list[Any]]

_PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep


def priority_lists(queue_name: str) -> list[str]:
    """The Redis lists of one queue, in the order a worker takes from them (kombu priority 0 first)."""
    return [queue_name if step == 0 else f"{queue_name}{_PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


ALL_LISTS = [name for queue_name in queue.ALL_QUEUES for name in priority_lists(queue_name)]


def _forget_process_state() -> None:
    if queue.get_celery.cache_info().currsize:
        queue.get_celery().close()
    queue.get_celery.cache_clear()
    forget_engine()
    get_settings.cache_clear()


@pytest.fixture
def broker(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """Pagemill configured with the session's Redis as broker (SQLite for the sessions); a client on it."""
    for name in list(os.environ):
        if name.startswith("PAGEMILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PAGEMILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PAGEMILL_BROKER__URL", redis_url)
    _forget_process_state()
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.delete(*ALL_LISTS, "celery")
    try:
        yield client
    finally:
        client.delete(*ALL_LISTS, "celery")
        client.close()
        _forget_process_state()


def envelopes(client: redis.Redis, queue_name: str) -> list[dict[str, Any]]:
    """The raw messages waiting in a queue (all its priority lists), in delivery order."""
    out: list[dict[str, Any]] = []
    for name in priority_lists(queue_name):
        # LPUSH puts the newest first; BRPOP takes the oldest first.
        out.extend(json.loads(item) for item in reversed(client.lrange(name, 0, -1)))
    return out


def messages(client: redis.Redis, queue_name: str) -> list[Message]:
    """(task name, args) of the messages waiting in a queue, in delivery order."""
    return [
        (envelope["headers"]["task"], json.loads(base64.b64decode(envelope["body"]))[0])
        for envelope in envelopes(client, queue_name)
    ]


def waiting(client: redis.Redis, queue_name: str) -> int:
    """How many messages wait in a queue, whatever their priority."""
    return sum(int(client.llen(name)) for name in priority_lists(queue_name))


def _holds_messages(client: redis.Redis, name: str) -> bool:
    # Other lists share the database: the API's rate limiter keeps its moving windows there (timestamps).
    first = client.lindex(name, 0)
    try:
        envelope = json.loads(first) if first is not None else None
    except ValueError:
        return False
    return isinstance(envelope, dict) and {"body", "headers", "properties"} <= envelope.keys()


def all_queue_lists(client: redis.Redis) -> dict[str, list[Message]]:
    """Every queue that holds messages, by name (whatever queue a misrouted message landed in)."""
    names = [key.decode() for key in client.scan_iter(count=1000) if client.type(key) == b"list"]
    queues = {name.split(_PRIORITY_SEP)[0] for name in names if _holds_messages(client, name)}
    return {name: messages(client, name) for name in queues}


def test_a_task_is_published_only_when_the_session_commits(broker: redis.Redis) -> None:
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["job-1"])
        session.flush()
        assert waiting(broker, queue.INGEST_QUEUE) == 0  # not before the commit
    assert messages(broker, queue.INGEST_QUEUE) == [(queue.INGEST_JOB, ["job-1"])]


def test_a_task_of_a_rolled_back_session_is_never_published(broker: redis.Redis) -> None:
    with pytest.raises(RuntimeError), db.session_scope() as session:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["doomed"])
        raise RuntimeError("the request failed after enqueueing")
    assert all_queue_lists(broker) == {}

    # The next request's commit publishes its own task only.
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["next"])
    assert all_queue_lists(broker) == {queue.INGEST_QUEUE: [(queue.INGEST_JOB, ["next"])]}


def test_a_rollback_forgets_tasks_for_good_in_a_reused_session(broker: redis.Redis) -> None:
    session = Session(db.get_engine())
    try:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["rolled-back"])
        session.rollback()
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["committed"])
        session.commit()
        session.execute(text("SELECT 1"))
        session.commit()  # a later empty commit publishes nothing again
    finally:
        session.close()
    assert messages(broker, queue.INGEST_QUEUE) == [(queue.INGEST_JOB, ["committed"])]


def test_several_tasks_go_out_in_order_after_one_commit(broker: redis.Redis) -> None:
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        for job_id in ("a", "b", "c"):
            queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id])
    assert messages(broker, queue.INGEST_QUEUE) == [(queue.INGEST_JOB, [job_id]) for job_id in "abc"]


def test_each_message_goes_only_to_its_own_queue(broker: redis.Redis) -> None:
    # Regression: with bare Queue(name) declarations every queue was bound to the same exchange and key,
    # and each message was delivered to every queue.
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["job-1"])
        queue.enqueue_after_commit(session, queue.PROCESS_PAGES, ["job-1", [0, 1, 2]])
        queue.enqueue_after_commit(session, queue.INGEST_JOB, ["job-2"])
    assert all_queue_lists(broker) == {
        queue.INGEST_QUEUE: [(queue.INGEST_JOB, ["job-1"]), (queue.INGEST_JOB, ["job-2"])],
        queue.CPU_QUEUE: [(queue.PROCESS_PAGES, ["job-1", [0, 1, 2]])],
    }


def test_page_work_can_be_routed_to_the_gpu_queue(broker: redis.Redis) -> None:
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.PROCESS_PAGES, ["job-1", [3], True], queue.GPU_QUEUE)
    assert all_queue_lists(broker) == {queue.GPU_QUEUE: [(queue.PROCESS_PAGES, ["job-1", [3], True])]}


def test_messages_carry_ids_only_as_json(broker: redis.Redis) -> None:
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        queue.enqueue_after_commit(session, queue.PROCESS_PAGES, ["job-9", [4]])
    (envelope,) = envelopes(broker, queue.CPU_QUEUE)
    assert envelope["content-type"] == "application/json"
    assert envelope["properties"]["delivery_info"] == {"exchange": "cpu", "routing_key": "cpu"}
    assert json.loads(base64.b64decode(envelope["body"]))[:2] == [["job-9", [4]], {}]


def test_higher_priorities_are_delivered_first_arrival_order_within_one(broker: redis.Redis) -> None:
    # Pagemill priorities (a tier's, 0 last to 9 first) against kombu's (0 first, in steps 0/3/6/9).
    sent = [("free-1", 0), ("enterprise-1", 9), ("standard-1", 5), ("free-2", 0), ("enterprise-2", 9)]
    with db.session_scope() as session:
        session.execute(text("SELECT 1"))
        for job_id, priority in sent:
            queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id], priority=priority)
    order = ["enterprise-1", "enterprise-2", "standard-1", "free-1", "free-2"]
    assert messages(broker, queue.INGEST_QUEUE) == [(queue.INGEST_JOB, [job_id]) for job_id in order]
    priorities = dict(sent)
    for envelope in envelopes(broker, queue.INGEST_QUEUE):
        job_id = json.loads(base64.b64decode(envelope["body"]))[0][0]
        assert envelope["properties"]["priority"] == queue.broker_priority(priorities[job_id])
    assert all_queue_lists(broker).keys() == {queue.INGEST_QUEUE}
