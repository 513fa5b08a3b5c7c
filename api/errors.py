"""One handler renders every error as ``{"error": {"code", "message", "details"}, "request_id"}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from slowapi.errors import RateLimitExceeded
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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
    fields = [
        {"field": ".".join(str(part) for part in err.get("loc", ())[1:]) or None, "message": err.get("msg")}
        for err in exc.errors()
    ]
    first = fields[0] if fields else {"field": None, "message": "invalid"}
    message = f"Invalid {first['field']}: {first['message']}" if first["field"] else str(first["message"])
    return error_response(
        request, 422, {"code": "VALIDATION_ERROR", "message": message, "details": {"errors": fields}}
    )


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


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable", exc_info=exc)
    return await _pagemill_error(
        request, DependencyUnavailable("The database is unavailable; try again shortly.")
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    # Starlette renders unhandled errors outside every middleware: the request-id one cannot add its header.
    request_id = request_id_of(request)
    return error_response(
        request,
        500,
        {"code": "INTERNAL_ERROR", "message": "An internal error occurred.", "details": {}},
        {"X-Request-ID": request_id} if request_id else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(PagemillError, _pagemill_error)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
