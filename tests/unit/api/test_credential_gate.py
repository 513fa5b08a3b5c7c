"""The credential gate opens exactly the public paths (docs, their assets, schema, health), never a path that
only starts like one, and refuses the rest before their body is read."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.middleware import CredentialGateMiddleware


def _through_gate(method: str, path: str) -> tuple[bool, int | None, dict[str, object] | None]:
    """(inner app reached, status the gate answered with, its body) for an anonymous request."""
    reached = False
    sent: list[Message] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reached
        reached = True

    async def receive() -> Message:
        raise AssertionError("the gate must not read the body")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": method, "path": path, "headers": [], "state": {}}
    asyncio.run(CredentialGateMiddleware(inner, oidc_enabled=False)(scope, receive, send))
    if not sent:
        return reached, None, None
    return reached, sent[0]["status"], json.loads(sent[1]["body"])


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/docs",
        "/api/v1/docs/assets/swagger-ui-bundle.js",
        "/api/v1/redoc",
        "/api/v1/openapi.json",
        "/api/v1/health/live",
        "/api/v1/health/ready",
    ],
)
def test_public_paths_pass_without_a_key(path: str) -> None:
    assert _through_gate("GET", path) == (True, None, None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/documents"),
        ("GET", "/api/v1/docsx"),
        ("GET", "/api/v1/redocs"),
        ("GET", "/api/v1/openapi.json.bak"),
        ("GET", "/api/v1/healthz"),
        ("GET", "/api/v1/jobs"),
    ],
)
def test_other_paths_are_refused_before_the_body_is_read(method: str, path: str) -> None:
    reached, status, body = _through_gate(method, path)
    assert not reached and status == 401
    assert body is not None and body["error"]["code"] == "UNAUTHORIZED"  # type: ignore[index]
