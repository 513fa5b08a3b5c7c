"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools protocol, but every request it refuses
before the application sees it gets the one error body and a request id, and the request line and headers
are bounded.

Uvicorn answers a request it cannot parse itself, with a plain-text ``400 Invalid HTTP request received.``
that no middleware or exception handler can reach. A URL over 65,535 bytes is one such request: httptools
parses URLs with http-parser's ``http_parser_parse_url``, whose offsets are 16-bit, so a long query string
fails in the server, not in the app. This class keeps uvicorn's parsing and connection handling and
changes only what such a refusal looks like, and refuses URLs and header blocks that are too large with
their own statuses (414, 431) before anything else is done with them.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pagemill.errors import HeadersTooLarge, MalformedRequest, UrlTooLong

log = logging.getLogger(__name__)

MAX_URL_BYTES: Final = 16 * 1024
"""Longest request target (path and query string). Pagemill's own URLs stay under a few hundred bytes;
nginx's default request-line buffer is 8 KiB, h11's whole-head limit 16 KiB."""
MAX_HEADER_BYTES: Final = 64 * 1024
"""Most bytes of header names and values in one request (room for large OIDC tokens)."""


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; httptools turns it into an HttpParserError, which
    uvicorn answers through :meth:`ErrorBodyHttpToolsProtocol.send_400_response`."""


class ErrorBodyHttpToolsProtocol(HttpToolsProtocol):
    """httptools protocol whose own refusals are Pagemill error bodies (pass as uvicorn's ``http``)."""

    _refusal: MalformedRequest | None = None
    _header_bytes: int = 0

    def on_message_begin(self) -> None:
        """A new request on the connection: nothing refused, no header bytes counted yet."""
        super().on_message_begin()
        self._refusal = None
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        """Collect the URL (it may come in pieces) and stop at once when it passes the limit."""
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refusal = UrlTooLong(max_bytes=MAX_URL_BYTES)
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        """Collect a header and stop when the header block passes the limit."""
        super().on_header(name, value)
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refusal = HeadersTooLarge(max_bytes=MAX_HEADER_BYTES)
            raise _Refused

    def send_400_response(self, msg: str) -> None:
        """Answer a request the server refused with the one error body, then close the connection (the
        stream cannot be trusted to be at a request boundary)."""
        error = self._refusal or MalformedRequest()
        request_id = uuid.uuid4().hex
        log.warning(
            "refused a request before the application: %s %s",
            error.http_status,
            error.code,
            extra={"request_id": request_id},
        )
        body = json.dumps({"error": error.to_dict(), "request_id": request_id}).encode()
        reason = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
        head = [b"HTTP/1.1 %d %s\r\n" % (error.http_status, reason.get(error.http_status, b"Bad Request"))]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: " + request_id.encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
