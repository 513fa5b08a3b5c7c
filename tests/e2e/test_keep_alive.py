"""Keep-alive connections of a real ``pagemill api``: held idle for ``api.keep_alive_s``, then closed.

The default (75 s) outlasts the clients' own idle expiry (httpx: 5 s), so a client closes first and never
sends on a connection the server is closing (the load benchmark saw that race at uvicorn's 5 s default:
``RemoteProtocolError``). Here the setting is turned down to 1 s to see that it reaches the server.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.stack import migrate
from tests.support.services import embedded_env, pagemill_api

pytestmark = pytest.mark.e2e

_REQUEST = b"GET /api/v1/health/live HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    env = {**embedded_env(tmp_path_factory.mktemp("keep-alive")), "PAGEMILL_API__KEEP_ALIVE_S": "1"}
    migrate(env)
    with pagemill_api(env) as (_, base_url):
        url = urlsplit(base_url)
        assert url.hostname is not None and url.port is not None
        yield url.hostname, url.port


def _exchange(connection: socket.socket) -> bytes:
    """Send one request and read its whole answer (headers, then Content-Length bytes of body)."""
    connection.sendall(_REQUEST)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = connection.recv(65536)
        assert chunk, "closed before the headers"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = dict(line.split(b":", 1) for line in head.lower().split(b"\r\n")[1:])
    length = int(headers[b"content-length"])
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk, "closed before the body"
        body += chunk
    return answer


def test_an_idle_connection_is_kept_within_the_setting(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        assert _exchange(connection).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)
        assert _exchange(connection).startswith(b"HTTP/1.1 200"), "the same connection serves again"


def test_an_idle_connection_is_closed_after_the_setting(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        assert _exchange(connection).startswith(b"HTTP/1.1 200")
        time.sleep(2.0)
        assert connection.recv(1) == b"", "the server closed it after api.keep_alive_s (1 s here)"
