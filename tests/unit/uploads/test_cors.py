"""A browser tus client (tus-js-client on another origin) gets through CORS: PATCH, HEAD and the tus
headers are allowed, and the tus response headers are readable from the page."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from pagemill.settings import get_settings

with warnings.catch_warnings():
    # As in tests/unit/api/conftest.py: Starlette warns at import when its test client runs on httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ORIGIN = "https://app.example.com"


@pytest.fixture
def client(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    monkeypatch.setenv("PAGEMILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PAGEMILL_API__CORS_ORIGINS", json.dumps([ORIGIN]))
    get_settings.cache_clear()
    from api.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.mark.parametrize("method", ["PATCH", "HEAD", "POST", "DELETE"])
def test_preflight_allows_the_tus_requests(client: TestClient, method: str) -> None:
    asked = (
        "tus-resumable,upload-offset,upload-length,upload-metadata,upload-checksum,content-type,authorization"
    )
    response = client.options(
        "/api/v1/uploads/0b6e6a53-5e0a-4a8e-9c5e-7d0f0c7c1a11",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": asked,
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert method in response.headers["access-control-allow-methods"]
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert set(asked.split(",")) <= allowed


def test_tus_response_headers_are_exposed_to_the_page(client: TestClient) -> None:
    response = client.options("/api/v1/uploads", headers={"Origin": ORIGIN})
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {
        "upload-offset",
        "upload-length",
        "upload-expires",
        "tus-resumable",
        "tus-version",
        "tus-max-size",
        "location",
        "pagemill-job-id",
    } <= exposed


def test_another_origin_is_not_allowed(client: TestClient) -> None:
    response = client.options(
        "/api/v1/uploads",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PATCH"},
    )
    assert "access-control-allow-origin" not in response.headers
