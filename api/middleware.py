"""ASGI middleware: request ids and access log, admission (503 past the concurrency limit), a credential gate,
the caller resolved before the body, a body cap (global and per tier) and read timeout enforced while bodies
stream in, security headers."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import anyio
import anyio.to_thread
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import credentials_of, resolve_principal
from api.errors import database_down
from api.rate_limits import seconds_until_allowed
from api.stream_auth import is_event_stream, stream_principal, stream_token_of
from pagemill.errors import (
    DependencyUnavailable,
    FileTooLarge,
    PagemillError,
    RateLimited,
    RequestTimeout,
    Unauthorized,
)
from pagemill.logging import bound as bound_log_context
from pagemill.logging import request_id_var
from pagemill.settings import Settings
from pagemill.tenancy.keys import KEY_PREFIX, looks_like_key
from pagemill.tenancy.principal import Principal

_SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


access_log = logging.getLogger("pagemill.access")
log = logging.getLogger(__name__)


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
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            tenant = getattr(principal, "tenant_id", "-")
            access_log.info(
                "%s %s %d %.1fms client=%s tenant=%s",
                scope["method"],
                scope["path"],
                status,
                duration_ms,
                client[0] if client else "-",
                tenant,
                # The same, as fields of a JSON line (pagemill.logging.EXTRA_FIELDS).
                extra=_present(
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=duration_ms,
                    client=client[0] if client else None,
                    tenant=None if tenant == "-" else tenant,
                ),
            )
            request_id_var.reset(token)


def _present(**fields: object) -> dict[str, object]:
    """The fields that have a value."""
    return {name: value for name, value in fields.items() if value is not None}


class BodyLimitMiddleware:
    """Refuse bodies over the cap: at once from Content-Length, else as soon as the stream passes it; answer
    408 when the body stops arriving for ``read_timeout_s``.

    The cap is ``reported_limit`` (plus the multipart envelope's ``max_bytes - reported_limit``), narrowed
    to the caller's tier when ``PrincipalMiddleware`` (outside this one) has set ``upload_limit``. Starlette
    spools multipart uploads to disk; this stops a client from filling that disk, or from holding a
    connection and a spooled file open forever by stopping half-way. When either trips, the response closes
    the connection: the rest of the body is never read.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, reported_limit: int, read_timeout_s: float | None = None
    ) -> None:
        self.app = app
        self.overhead = max_bytes - reported_limit
        self.reported_limit = reported_limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reported = min(self.reported_limit, scope.get("state", {}).get("upload_limit", self.reported_limit))
        max_bytes = reported + self.overhead
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await send_error(scope, send, FileTooLarge(max_bytes=reported), close=True)
            return
        received = 0
        body_done = False
        tripped = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, tripped
            if body_done or self.read_timeout_s is None:
                # After the body only a disconnect can come, and a streaming response waits for it.
                message = await receive()
            else:
                with anyio.move_on_after(self.read_timeout_s) as waiting:
                    message = await receive()
                if waiting.cancelled_caught:
                    tripped = True
                    raise RequestTimeout(timeout_s=self.read_timeout_s)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > max_bytes:
                    tripped = True
                    raise FileTooLarge(max_bytes=reported)
            return message

        async def closing_send(message: Message) -> None:
            if tripped and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)


async def send_error(scope: Scope, send: Send, error: PagemillError, *, close: bool = False) -> None:
    """Answer from middleware with the one error body (the app's handlers are not reached)."""
    request_id = scope.get("state", {}).get("request_id")
    # Compact, as the app's own error bodies are.
    body = json.dumps({"error": error.to_dict(), "request_id": request_id}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
    if close and b"connection" not in {name for name, _ in headers}:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Public: the schema and the docs pages (exact paths), health checks and the docs' assets (whole subtrees).
# Exact, not prefixes: "/api/v1/docs" must not open "/api/v1/docsx" or a future "/api/v1/docs-export".
_OPEN_PATHS = frozenset({"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/redoc"})
# Result links carry their own authority (a signature and an expiry, pagemill.retention.links).
_OPEN_SUBTREES = ("/api/v1/health/", "/api/v1/docs/", "/api/v1/result-links/")


def needs_credentials(scope: Scope) -> bool:
    """Whether the request is to a protected path (every API path but the public ones; not a preflight)."""
    path: str = scope.get("path", "")
    return (
        scope["type"] == "http"
        and scope["method"] != "OPTIONS"
        and path.startswith("/api/v1/")
        and path not in _OPEN_PATHS
        and not path.startswith(_OPEN_SUBTREES)
    )


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
        if (
            not needs_credentials(scope)
            # A stream token in an event stream's URL (browsers): PrincipalMiddleware checks it.
            or stream_token_of(scope) is not None
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


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class PrincipalMiddleware:
    """Resolve the caller of a protected path before its body is read, and narrow the body cap to its tier.

    The key lookup (or token check) is one short transaction in a worker thread, committed at once: no
    database connection is held while the body arrives or is stored. A caller that is not valid is
    answered 401 here, and a free-tier key sending 100 MiB is answered 413 from Content-Length (or as soon
    as the stream passes its cap, in ``BodyLimitMiddleware``) instead of after the upload. So is a caller
    whose rate budget is spent (429) on a request with a body.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not needs_credentials(scope):
            await self.app(scope, receive, send)
            return
        api_key, bearer = credentials_of(Headers(scope=scope))
        with_body = scope.get("method") in _BODY_METHODS
        token = stream_token_of(scope) if api_key is None and bearer is None else None
        try:
            if token is not None and self.settings.auth.enabled:
                # A signature check, no I/O: no thread hop. Stream GETs have no body to pre-check.
                principal, wait_s = stream_principal(self.settings, token, scope), None
            else:
                # One thread hop for both lookups: under load each hop waits for a thread and for the GIL.
                principal, wait_s = await anyio.to_thread.run_sync(
                    _resolve_and_look_at_limit, self.settings, api_key, bearer, with_body
                )
        except PagemillError as error:
            await send_error(scope, send, error)
            return
        except DBAPIError as exc:
            if not database_down(exc):
                raise
            log.exception("database unavailable while authenticating")
            await send_error(
                scope, send, DependencyUnavailable("The database is unavailable; try again shortly.")
            )
            return
        if wait_s is not None:
            # Refused now rather than after an upload the route would refuse anyway.
            await send_error(scope, send, RateLimited(retry_after_s=wait_s), close=True)
            return
        state = scope.setdefault("state", {})
        # The rate limiter's key function, the audit actor and the access log read it from here.
        state["principal"] = principal
        tier = self.settings.tiers.get(principal.tier)
        state["upload_limit"] = min(self.settings.limits.max_upload_bytes, tier.max_file_bytes)
        if scope.get("path", "").startswith("/api/v1/batches"):
            # A batch carries many files: the service holds each to the tier's file size (refusing only
            # that item); the body as a whole is held to the upload limit only.
            state["upload_limit"] = self.settings.limits.max_upload_bytes
        # Every line logged while the request is served names its tenant (threads inherit the context).
        with bound_log_context(tenant=principal.tenant_id):
            await self.app(scope, receive, send)


def _resolve_and_look_at_limit(
    settings: Settings, api_key: str | None, bearer: str | None, with_body: bool
) -> tuple[Principal, int | None]:
    """The caller's principal and, for a request with a body, the seconds until its rate budget has room
    (None: it has room now). Blocking: the key lookup and, with a body, the limiter's store."""
    principal = resolve_principal(settings, api_key, bearer)
    return principal, seconds_until_allowed(principal) if with_body else None


class AdmissionMiddleware:
    """Work on at most ``limit`` requests at once; answer the rest 503 SERVICE_UNAVAILABLE + Retry-After at
    once, before anything is read or looked up (health checks are never refused).

    The thread pool that runs blocking work (database, blob store) gets ``limit`` threads and the database
    pool as many connections (``pagemill.db.pool_capacity``), so an admitted request never waits for a
    thread or a connection that it cannot get: overload is refused up front instead of piling up until
    pool timeouts turn it into errors. The counter needs no lock: it is only touched on the event loop.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self._threads_sized = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/api/v1/health/"):
            await self.app(scope, receive, send)
            return
        if not self._threads_sized:
            # Only reachable inside the running event loop, hence here rather than in __init__.
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.limit
            self._threads_sized = True
        if self.in_flight >= self.limit:
            # Not closing: the server discards the unread body and the connection stays usable; closing
            # with unread bytes would make the kernel reset it, and the client might never see the 503.
            busy = DependencyUnavailable(
                "The server is busy; retry after Retry-After seconds.", retry_after_s=1, limit=self.limit
            )
            await send_error(scope, send, busy)
            return
        self.in_flight += 1
        if is_event_stream(scope):
            await self._stream(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An event stream counts until its response starts (its checks and lookups), not while it is open:
        a client may watch for hours, and it holds no thread or connection while it waits."""
        counted = True

        async def uncounting_send(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self.in_flight -= 1
            await send(message)

        try:
            await self.app(scope, receive, uncounting_send)
        finally:
            if counted:
                self.in_flight -= 1


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
