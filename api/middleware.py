"""ASGI middleware: request ids and access log, a body cap enforced while bodies stream in, a credential gate,
security headers."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pagemill.errors import FileTooLarge, PagemillError, Unauthorized
from pagemill.logging import request_id_var
from pagemill.tenancy.keys import KEY_PREFIX, looks_like_key

_SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


access_log = logging.getLogger("pagemill.access")


class RequestIdMiddleware:
    """Echo a client's X-Request-ID (if sane) or make one; expose it to handlers and logs; log each request.

    The access log is written here rather than by uvicorn so that every line carries the request id and
    the tenant (uvicorn's own access log runs outside the request's context).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = state.get("principal")
            client = scope.get("client")
            access_log.info(
                "%s %s %d %.1fms client=%s tenant=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                client[0] if client else "-",
                getattr(principal, "tenant_id", "-"),
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once from Content-Length, else as soon as the stream passes it.

    Starlette spools multipart uploads to disk; this stops a client from filling that disk.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, reported_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reported_limit = reported_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise FileTooLarge(max_bytes=self.reported_limit)
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_error(scope, send, FileTooLarge(max_bytes=self.reported_limit), close=True)


async def send_error(scope: Scope, send: Send, error: PagemillError, *, close: bool = False) -> None:
    """Answer from middleware with the one error body (the app's handlers are not reached)."""
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps({"error": error.to_dict(), "request_id": request_id}).encode()
    headers = [(b"content-type", b"application/json")]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_OPEN_PATHS = ("/api/v1/health/", "/api/v1/openapi.json", "/api/v1/docs")


class CredentialGateMiddleware:
    """Refuse requests to protected paths that carry no plausible credential, before the body is read.

    FastAPI parses a multipart body (spooling it to disk) before route dependencies run, so without this an
    anonymous client could make the API store a large upload only to be told 401. This is a cheap format
    check (a key's checksum, or the presence of a bearer token when OIDC is on); the dependency in
    ``api.auth`` does the real check in the database.
    """

    def __init__(self, app: ASGIApp, *, oidc_enabled: bool) -> None:
        self.app = app
        self.oidc_enabled = oidc_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or not path.startswith("/api/v1/")
            or path.startswith(_OPEN_PATHS)
            or (error := self._implausible(dict(scope["headers"]))) is None
        ):
            await self.app(scope, receive, send)
            return
        await send_error(scope, send, error)

    def _implausible(self, headers: dict[bytes, bytes]) -> Unauthorized | None:
        """Why the request's credential cannot be valid, or None if it may be."""
        malformed = Unauthorized("The API key is not valid.", reason="malformed")
        api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
        if api_key:
            return None if looks_like_key(api_key) else malformed
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Unauthorized()
        if token.startswith(KEY_PREFIX):
            return None if looks_like_key(token) else malformed
        return None if self.oidc_enabled else malformed


class SecurityHeadersMiddleware:
    """Headers every response carries: no MIME sniffing, no framing, no referrer; HSTS on HTTPS.

    HSTS only when the request came over TLS (directly, or via a trusted proxy's X-Forwarded-Proto, which
    uvicorn applies to the scope): browsers ignore it over plain HTTP, and a plain-HTTP development setup
    must not be pinned to HTTPS.
    """

    def __init__(self, app: ASGIApp, hsts_max_age_s: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains".encode() if hsts_max_age_s else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.extend(
                    [
                        (b"x-content-type-options", b"nosniff"),
                        (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"no-referrer"),
                    ]
                )
                if secure and self.hsts:
                    headers.append((b"strict-transport-security", self.hsts))
            await send(message)

        await self.app(scope, receive, send_with_headers)
