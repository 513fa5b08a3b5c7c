"""Publishing events to NATS (events.nats_url), for the relay.

Each event goes out as its CloudEvents JSON (:func:`pagemill.events.types.envelope_json`) on the subject
``<events.nats_subject_prefix>.<type>`` (``pagemill.job.succeeded``, ``pagemill.batch.completed``) with a
``Nats-Msg-Id`` header holding the event id, so a JetStream stream on those subjects drops the copies that
at-least-once delivery makes (the relay publishes again whatever it could not mark relayed). A publish is
followed by a flush: :func:`publish` returns once the server has answered a PING sent after the last
message, i.e. it has read every message; it raises otherwise, and the relay keeps the events for its next
pass.

The relay is a synchronous Celery task, and nats-py is asyncio: each process keeps one connection, driven by
an event loop of its own in a daemon thread (an event loop run only during calls would leave the server's
PINGs unanswered between them, and the server would drop the connection). A connection that fails is closed
and the next call connects again. After a fork (the prefork pool) the child starts its own loop and
connection: the parent's are not usable there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import nats
from nats.aio.client import Client

from pagemill.errors import DependencyUnavailable
from pagemill.events.types import envelope_json
from pagemill.models import Event
from pagemill.settings import Settings

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
"""The header JetStream deduplicates on (within the stream's duplicate window)."""


@dataclass(frozen=True)
class NatsMessage:
    """One event as published: subject, headers and the CloudEvents JSON body."""

    subject: str
    headers: dict[str, str]
    body: bytes


def subject_for(event_type: str, prefix: str) -> str:
    """The subject of an event type: ``job.succeeded`` under prefix ``pagemill`` is
    ``pagemill.job.succeeded``."""
    return f"{prefix}.{event_type}"


def messages_for(events: Sequence[Event], settings: Settings) -> list[NatsMessage]:
    """The NATS messages of ``events``, in their order."""
    prefix = settings.events.nats_subject_prefix
    return [
        NatsMessage(
            subject=subject_for(event.type, prefix),
            headers={MSG_ID_HEADER: event.event_id},
            body=envelope_json(event),
        )
        for event in events
    ]


def publish(events: Sequence[Event], settings: Settings) -> None:
    """Publish ``events`` (CloudEvents JSON) to NATS and wait for the server to have them; raises
    DependencyUnavailable on failure (the relay keeps them and tries again)."""
    url = settings.events.nats_url
    if url is None:
        raise DependencyUnavailable("No NATS server is configured (events.nats_url).", dependency="nats")
    if not events:
        return
    _PUBLISHER.publish(url, messages_for(events, settings), settings.events.nats_timeout_s)


def close() -> None:
    """Close this process's connection (tests; a process that exits needs no call)."""
    _PUBLISHER.close()


def _servers(url: str) -> list[str]:
    """``nats_url`` may list several servers of a cluster, separated by commas."""
    return [part.strip() for part in url.split(",") if part.strip()]


class _Publisher:
    """One connection per process, used by any thread; calls are serialised (a relay pass is one call)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also the state of a freshly forked child: the parent's thread does not exist there, and its loop
        # and socket belong to the parent.
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None  # touched only on the loop's thread
        self._client_url: str | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="pagemill-nats", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def publish(self, url: str, messages: list[NatsMessage], timeout: float) -> None:
        with self._lock:
            loop = self._running_loop()
            future = asyncio.run_coroutine_threadsafe(self._publish(url, messages, timeout), loop)
            try:
                # Connecting and flushing are each bounded by ``timeout`` inside; this is the backstop.
                future.result(timeout=3 * timeout + 1)
            except Exception as exc:
                future.cancel()
                self._drop_connection(loop)
                log.debug("publishing %d event(s) to NATS failed: %r", len(messages), exc)
                raise DependencyUnavailable(
                    "NATS did not take the events.", dependency="nats", reason=type(exc).__name__
                ) from exc

    async def _publish(self, url: str, messages: list[NatsMessage], timeout: float) -> None:
        client = await self._connection(url, timeout)
        for message in messages:
            await client.publish(message.subject, message.body, headers=message.headers)
        await client.flush(timeout=timeout)  # type: ignore[arg-type]  # nats-py annotates int; any number works

    async def _connection(self, url: str, timeout: float) -> Client:
        client = self._client
        if client is not None and client.is_connected and self._client_url == url:
            return client
        if client is not None:
            await _close_quietly(client)
            self._client = None
        self._client = await nats.connect(
            servers=_servers(url),
            name=f"pagemill-relay:{os.getpid()}",
            connect_timeout=timeout,
            # A lost connection is not re-established in the background (where publishes would wait in a
            # buffer): the call fails, the relay keeps its events, and the next call connects afresh.
            allow_reconnect=False,
            error_cb=_log_error,
        )
        self._client_url = url
        return self._client

    def _drop_connection(self, loop: asyncio.AbstractEventLoop) -> None:
        async def drop() -> None:
            client, self._client = self._client, None
            if client is not None:
                await _close_quietly(client)

        try:
            asyncio.run_coroutine_threadsafe(drop(), loop).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            # The loop is stuck or gone: start a new one next time (the daemon thread dies with the process).
            self._loop = self._thread = None
            self._client = None

    def close(self) -> None:
        with self._lock:
            if self._loop is not None and self._thread is not None and self._thread.is_alive():
                self._drop_connection(self._loop)


async def _close_quietly(client: Client) -> None:
    try:
        await asyncio.wait_for(client.close(), timeout=2)
    except Exception:  # closing a broken connection may fail in many ways; it is gone either way
        log.debug("closing the NATS connection failed", exc_info=True)


async def _log_error(exc: Exception) -> None:
    # nats-py's default logs a traceback at ERROR for every refused connection; the caller reports it.
    log.debug("nats: %r", exc)


_PUBLISHER = _Publisher()
os.register_at_fork(after_in_child=_PUBLISHER._reset)
