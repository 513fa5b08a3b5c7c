"""HTTP request metrics: counted under each route's template, the template of a path remembered (bounded)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.requests import Request

from api import http_metrics
from api.http_metrics import RouteRememberingMiddleware, instrument


def _things_app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def get_thing(thing_id: str) -> str:
        return thing_id

    return app


def test_requests_are_counted_under_their_route_template() -> None:
    # A registry of the test's own: the instrumentator counts nothing in an app made after another one of the
    # same process registered its metrics (one app per process in production).
    registry = CollectorRegistry()
    app = _things_app()
    instrument(app, registry)
    with TestClient(app) as client:
        for thing_id in ("a", "b", "a", "b"):  # the second time each path's template is remembered
            assert client.get(f"/things/{thing_id}").status_code == 200
    counted = {"handler": "/things/{thing_id}", "method": "GET", "status": "2xx"}
    assert registry.get_sample_value("http_requests_total", counted) == 4
    raw = {**counted, "handler": "/things/a"}
    assert registry.get_sample_value("http_requests_total", raw) is None, "never under the raw path"


def test_the_api_counts_with_the_remembering_middleware(app: FastAPI) -> None:
    assert RouteRememberingMiddleware in [middleware.cls for middleware in app.user_middleware]


def _request(app: FastAPI, method: str, path: str) -> Request:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "app": app, "headers": []}
    return Request(scope)


def test_the_remembered_templates_are_bounded_and_keyed_by_method(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _things_app()
    monkeypatch.setattr(http_metrics, "REMEMBERED_PATHS", 2)
    middleware = RouteRememberingMiddleware(app, registry=CollectorRegistry())
    assert middleware._get_handler(_request(app, "GET", "/things/a")) == ("/things/{thing_id}", True)
    assert middleware._get_handler(_request(app, "GET", "/nowhere")) == ("/nowhere", False)
    assert middleware._get_handler(_request(app, "GET", "/things/b")) == ("/things/{thing_id}", True)
    assert len(middleware._handlers) == 2, "the oldest path was forgotten"
    assert ("GET", "/things/a", "") not in middleware._handlers
    # Resolved again when asked again: the same answer.
    assert middleware._get_handler(_request(app, "GET", "/things/a")) == ("/things/{thing_id}", True)
    # A method the route does not serve is a partial match: the instrumentator still names the template.
    assert middleware._get_handler(_request(app, "DELETE", "/things/a")) == ("/things/{thing_id}", True)
