"""The HTTP request metrics (prometheus-fastapi-instrumentator), with each path's route template remembered.

The instrumentator names a request's handler (its route template, ``/api/v1/jobs/{job_id}``) before every
request by matching the path against every route of the app in turn. With this API's routes that was about
9% of the CPU of a status read, the most frequent request. A path always resolves to the same template (the
routes are fixed once the app is built), so the answer is remembered per method and path, a bounded number
of them: clients poll the same few paths over and over.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request

REMEMBERED_PATHS: Final = 4096
"""Paths whose handler is remembered (the oldest is forgotten first): ids make every job's paths new."""


class RouteRememberingMiddleware(PrometheusInstrumentatorMiddleware):
    """The instrumentator's middleware, resolving each method and path to its handler once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handlers: dict[tuple[str, str, str], tuple[str, bool]] = {}

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        scope = request.scope
        key = (str(scope.get("method", "")), str(scope["path"]), str(scope.get("root_path", "")))
        handler = self._handlers.get(key)
        if handler is None:
            handler = super()._get_handler(request)
            if len(self._handlers) >= REMEMBERED_PATHS:
                del self._handlers[next(iter(self._handlers))]  # dicts keep insertion order: the oldest
            self._handlers[key] = handler
        return handler


def instrument(app: FastAPI, registry: CollectorRegistry = REGISTRY) -> None:
    """Count and time the app's requests (``http_requests_total``, ``http_request_duration_seconds``...)
    in ``registry``, ``/metrics`` itself left out."""
    Instrumentator(excluded_handlers=["/metrics"], registry=registry).instrument(app)
    for middleware in app.user_middleware:
        factory: object = middleware.cls
        if factory is PrometheusInstrumentatorMiddleware:
            middleware.cls = RouteRememberingMiddleware  # same arguments, one method different
