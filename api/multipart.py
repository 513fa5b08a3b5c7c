"""Refuse a multipart body that ends before its closing boundary, as the malformed request it is.

The multipart parser under Starlette does not check, when the body ends, that the closing delimiter
(``--boundary--``) came: a body cut off inside the file part parses as a form without that part, and the
client is told that ``file`` is missing (422) although it sent one that broke off. This middleware watches
the body stream for the closing delimiter and answers ``400 BAD_REQUEST`` when the body ends without it.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pagemill.errors import MalformedRequest


def _closing_delimiter(headers: Headers) -> bytes | None:
    """``--boundary--`` of a multipart/form-data request, or None (another type, or no boundary)."""
    kind, _, params = headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary" and value.strip().strip('"'):
            return b"--" + value.strip().strip('"').encode("latin-1") + b"--"
    return None  # the parser itself refuses a multipart body without a boundary


class MultipartCompletenessMiddleware:
    """Raise ``MalformedRequest`` from ``receive`` when a multipart body ends without its closing delimiter.

    Raised from ``receive`` (as the body cap raises ``FileTooLarge``), so it surfaces from the form parser and
    is rendered by the one error handler.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        delimiter = _closing_delimiter(Headers(scope=scope)) if scope["type"] == "http" else None
        if delimiter is None:
            await self.app(scope, receive, send)
            return
        seen = False
        tail = b""  # the delimiter may straddle two chunks

        async def checked_receive() -> Message:
            nonlocal seen, tail
            message = await receive()
            if message["type"] != "http.request" or seen:
                return message
            window = tail + message.get("body", b"")
            seen = delimiter in window
            tail = window[-(len(delimiter) - 1) :]
            if not seen and not message.get("more_body", False):
                raise MalformedRequest(
                    "The multipart body ended before its closing boundary: the upload is incomplete.",
                    reason="truncated_multipart",
                )
            return message

        await self.app(scope, checked_receive, send)
