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
EXEMPT_PREFIXES = ("/api/v1/health/",)


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
