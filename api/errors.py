"""One handler renders every error as ``{"error": {"code", "message", "details"}, "request_id"}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from slowapi.errors import RateLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pagemill.errors import DependencyUnavailable, PagemillError, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "FILE_TOO_LARGE",
    415: "UNSUPPORTED_TYPE",
}


class ErrorBody(BaseModel):
    """The error object."""

    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="Human-readable explanation.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """Every error response has this shape."""

    error: ErrorBody
    request_id: str | None = Field(description="Quote it when reporting a problem; also in X-Request-ID.")


def request_id_of(request: Request) -> str | None:
    """The request's id, set by the request-id middleware."""
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def error_response(
    request: Request, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """Render one error body."""
    return JSONResponse(
        status_code=status,
        content={"error": error, "request_id": request_id_of(request)},
        headers=headers,
    )


async def _pagemill_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PagemillError)
    headers = exc.headers() or None
    if exc.http_status >= 500:
        log.error("request failed: %s %s", exc.code, exc.message, exc_info=exc.__cause__ or exc)
    return error_response(request, exc.http_status, exc.to_dict(), headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI wraps any failure while parsing a form in a 400; surface the real cause (e.g. the body cap).
    if isinstance(exc.__cause__, PagemillError):
        return await _pagemill_error(request, exc.__cause__)
    # FastAPI answers a JSON body that is not UTF-8 with a bare 400 ("There was an error parsing the body");
    # it is as invalid as JSON that does not parse, and gets the same 422 (the documented answer).
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        not_utf8 = {"type": "json_invalid", "loc": ("body", 0), "ctx": {"error": "it is not UTF-8 text"}}
        return await _validation_error(request, RequestValidationError([not_utf8]))
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    body = {"code": code, "message": message, "details": {}}
    return error_response(request, exc.status_code, body, headers)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette names only the first route that matches the path, but GET and DELETE /jobs/{id} are two
    # routes: list the methods of every route on this path (the app keeps its routes in state.api_routes).
    methods: set[str] = set()
    for route in getattr(request.app.state, "api_routes", ()):
        match, _ = route.matches(request.scope)
        if match in (Match.PARTIAL, Match.FULL):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    uploads = _upload_fields(request)
    fields = [_field_error(err, uploads) for err in exc.errors()]
    first = fields[0] if fields else {"field": None, "message": "The request is not valid."}
    message = first["message"]
    if first["field"] and not first.get("explained"):
        message = f"Invalid {first['field']}: {message}"
    for field in fields:
        field.pop("explained", None)
    return error_response(
        request, 422, {"code": "VALIDATION_ERROR", "message": message, "details": {"errors": fields}}
    )


def _upload_fields(request: Request) -> set[str]:
    """Names of the route's file-upload parts (``File()`` parameters)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return set()
    return {field.alias for field in route.dependant.body_params if isinstance(field.field_info, params.File)}


_JSON_HINT = "send a JSON object with Content-Type: application/json"


def _field_error(err: Any, uploads: set[str]) -> dict[str, Any]:
    """One pydantic/FastAPI error as ``{"field", "message"}``, worded for someone calling the API with curl.

    FastAPI's own wording leaks its internals for a few common mistakes: a file part sent without a
    filename is "Expected UploadFile, received: <class 'str'>", a body that is not JSON is located at
    character 0 ("Invalid 0: JSON decode error"); those get a message that says what to send instead
    (``explained``: the message stands alone, without "Invalid <field>:").
    """
    loc = tuple(err.get("loc", ()))
    kind = err.get("type")
    field = ".".join(str(part) for part in loc[1:]) or None
    if loc[:1] == ("body",) and kind == "json_invalid":
        reason = err.get("ctx", {}).get("error")
        detail = f" ({reason})" if isinstance(reason, str) and reason else ""
        message = f"The request body is not valid JSON{detail}; {_JSON_HINT}."
        return {"field": "body", "message": message, "explained": True}
    if loc[:1] == ("body",) and len(loc) == 2 and loc[1] in uploads:
        message = (
            f"Send the document as multipart/form-data with a part named '{loc[1]}' that has a filename "
            f'(curl: -F "{loc[1]}=@document.pdf").'
        )
        return {"field": field, "message": message, "explained": True}
    if loc == ("body",):
        message = (
            f"The request body is missing; {_JSON_HINT}."
            if kind == "missing"
            else f"The request body is not a JSON object ({err.get('msg')}); {_JSON_HINT}."
        )
        return {"field": "body", "message": message, "explained": True}
    return {"field": field, "message": str(err.get("msg") or "invalid")}


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitExceeded)
    principal = getattr(request.state, "principal", None)
    tier = getattr(principal, "tier", None)
    limit = str(exc.limit.limit) if exc.limit is not None else "?"
    response = error_response(
        request,
        429,
        {
            "code": RateLimited.code,
            "message": f"Rate limit of {limit} per API key exceeded; retry after the Retry-After seconds.",
            "details": {"limit": limit, "tier": tier},
        },
    )
    # slowapi computes X-RateLimit-* and Retry-After from the window that was hit.
    limiter = request.app.state.limiter
    injected: JSONResponse = limiter._inject_headers(response, request.state.view_rate_limit)
    return injected


def database_down(exc: BaseException) -> bool:
    """Whether a database error means the database (or this connection to it) is gone, not a bug: an
    OperationalError, or any driver error after which SQLAlchemy dropped the connection (Postgres ending a
    session idle in a transaction arrives as an InternalError)."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if database_down(exc):
        return await _database_down(request, exc)
    return await _unexpected(request, exc)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    # Logged here, once, with the database's own error; the 503 rendered below is not logged again.
    log.error("database unavailable", exc_info=exc)
    error = DependencyUnavailable("The database is unavailable; try again shortly.")
    return error_response(request, error.http_status, error.to_dict(), error.headers())


_INTERNAL_ERROR = {"code": "INTERNAL_ERROR", "message": "An internal error occurred.", "details": {}}


class UnexpectedErrorMiddleware:
    """Answer an unhandled exception with the one 500 body and log it once, with the request id.

    Starlette's own last-resort handler runs outside every middleware, after the request-id middleware has
    reset its context (log lines said ``[-]``), and re-raises afterwards so that uvicorn logs the same
    traceback a second time. Installed innermost, this catches the exception while the request's context
    is still set and does not re-raise. When the response has already started (a stream failing half-way)
    nothing can be sent any more: the error is logged and the connection ends with a truncated body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(Request(scope), 500, dict(_INTERNAL_ERROR))(scope, receive, send)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Reached only for errors raised outside UnexpectedErrorMiddleware (in an outer middleware): the
    # request-id middleware's context is gone by now, so the id is passed to the log record explicitly.
    request_id = request_id_of(request)
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id or "-"})
    # Starlette renders these outside every middleware: the request-id one cannot add its header.
    return error_response(
        request, 500, dict(_INTERNAL_ERROR), {"X-Request-ID": request_id} if request_id else None
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``, and the middleware for unhandled errors.

    Call before adding any other middleware: the first one added is the innermost, and the unhandled-error
    middleware must run inside the request-id one.
    """
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_exception_handler(PagemillError, _pagemill_error)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
