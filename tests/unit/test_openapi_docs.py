"""docs/openapi.json is exported from the app, must match it, and must document every operation's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "export_openapi.py"
SCHEMA = REPO_ROOT / "docs" / "openapi.json"
ERROR_REF = "#/components/schemas/ErrorResponse"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Health endpoints answer with their own small bodies (readiness reports `checks`), not the error shape.
# Open paths: health, and signed result links (their signature and expiry are the credential).
EXEMPT_PREFIXES = ("/api/v1/health/", "/api/v1/result-links/")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _json_schema_refs(response: dict[str, Any]) -> set[str]:
    refs: set[str] = set()
    for media in response.get("content", {}).values():
        text = json.dumps(media.get("schema", {}))
        refs.update(part.split('"')[0] for part in text.split('"$ref": "')[1:])
    return refs


def test_openapi_schema_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr or result.stdout


def test_every_operation_documents_its_error_responses() -> None:
    missing = []
    for path, method, operation in _operations():
        if path.startswith(EXEMPT_PREFIXES):
            continue
        documented = [
            status
            for status, response in operation.get("responses", {}).items()
            if status.startswith("4") and ERROR_REF in _json_schema_refs(response)
        ]
        if not documented:
            missing.append(f"{method.upper()} {path}")
    assert not missing, f"operations with no 4xx response using ErrorResponse: {missing}"


def test_no_operation_documents_the_default_validation_shape() -> None:
    wrong = [
        f"{method.upper()} {path} {status}"
        for path, method, operation in _operations()
        for status, response in operation.get("responses", {}).items()
        if "#/components/schemas/HTTPValidationError" in _json_schema_refs(response)
    ]
    assert not wrong, f"responses documented with a shape the API never sends: {wrong}"


def test_every_protected_operation_documents_its_credentials() -> None:
    # Every /api/v1 operation but health needs an API key: the schema says how to send it and what a
    # refusal looks like, so generated clients and fuzzers know to send one.
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    wrong = []
    for path, method, operation in _operations():
        if path.startswith(EXEMPT_PREFIXES):
            assert "security" not in operation, f"{method.upper()} {path} is open but declares security"
            continue
        unauthorized = operation.get("responses", {}).get("401", {})
        security = [name for requirement in operation.get("security", []) for name in requirement]
        if ERROR_REF not in _json_schema_refs(unauthorized) or set(security) != {"bearer", "apiKey"}:
            wrong.append(f"{method.upper()} {path}")
    assert not wrong, f"protected operations without a documented 401 or security requirement: {wrong}"
