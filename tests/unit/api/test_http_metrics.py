"""HTTP request metrics: counted under each route's template, the template of a path remembered (bounded)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.requests import Request

from api import http_metrics
from api.http_metrics import RouteRememberingMiddleware


def _requests(handler: str, status: str) -> float:
    labels = {"handler": handler, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def test_requests_are_counted_under_their_route_template(client: TestClient, api_key: str) -> None:
    template = "/api/v1/jobs/{job_id}"
    before = _requests(template, "4xx")
    headers = {"Authorization": f"Bearer {api_key}"}
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for job_id in (first, second, first, second):  # the second time each path's template is remembered
        assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).status_code == 404
    assert _requests(template, "4xx") - before == 4
    assert (
        REGISTRY.get_sample_value(
            "http_requests_total", {"handler": f"/api/v1/jobs/{first}", "method": "GET", "status": "4xx"}
        )
        is None
    ), "never under the raw path"


def _request(app: FastAPI, method: str, path: str) -> Request:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "app": app, "headers": []}
    return Request(scope)


def test_the_remembered_templates_are_bounded_and_keyed_by_method(monkeypatch: pytest.MonkeyPatch) -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def get_thing(thing_id: str) -> str:
        return thing_id

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
