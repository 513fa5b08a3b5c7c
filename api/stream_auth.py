"""Event streams among the requests: which ones they are, and the stream token a browser puts in their URL.

The SSE streams are long-lived GETs: the admission limit counts them only until their response starts
(``api.middleware.AdmissionMiddleware``), and they, like the job WebSocket, accept a stream token as
``?token=`` where other routes take only the Authorization or X-API-Key header.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs

from starlette.types import Scope

from pagemill.events import stream_tokens
from pagemill.settings import Settings
from pagemill.tenancy.principal import Principal

_STREAM_PATH = re.compile(r"^/api/v1/(?:events|jobs/(?P<job>[^/]+)/(?P<kind>events|ws))$")
_TOKEN_IN_QUERY = re.compile(r"(?<=[?&]token=)[^&\s\"]+")


def is_event_stream(scope: Scope) -> bool:
    """Whether ``scope`` is a GET of an SSE stream (``/api/v1/events``, ``/api/v1/jobs/{id}/events``)."""
    if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
        return False
    match = _STREAM_PATH.match(scope.get("path", ""))
    return match is not None and match["kind"] != "ws"


def stream_token_of(scope: Scope) -> str | None:
    """The ``?token=`` of a request to an event stream (SSE or the job WebSocket); None elsewhere."""
    is_socket = scope["type"] == "websocket" and _STREAM_PATH.match(scope.get("path", "")) is not None
    if not is_socket and not is_event_stream(scope):
        return None
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def stream_principal(settings: Settings, token: str, scope: Scope) -> Principal:
    """The principal of a stream token used on the stream ``scope`` asks for (see
    :func:`pagemill.events.stream_tokens.authorize`)."""
    match = _STREAM_PATH.match(scope.get("path", ""))
    return stream_tokens.authorize(settings, token, match["job"] if match else None)


class _RedactTokens(logging.Filter):
    """Masks ``token=`` values in the server's own log lines (uvicorn logs each WebSocket's path with its
    query): a stream token is short-lived, but an API key sent there by mistake must not be kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub("***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def redact_tokens_in_server_log() -> None:
    """Install the masking filter on uvicorn's logger (once per process)."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RedactTokens) for f in server_log.filters):
        server_log.addFilter(_RedactTokens())
