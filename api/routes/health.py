"""Liveness and readiness."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from pagemill.db import get_engine
from pagemill.errors import PagemillError
from pagemill.migrate import require_migrated
from pagemill.queue import get_celery
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store

router = APIRouter(prefix="/api/v1/health", tags=["health"])


@router.get("/live", summary="Liveness")
def live() -> dict[str, str]:
    """200 while the process can answer; it does not look at dependencies (a restart would not fix them)."""
    return {"status": "ok"}


def _check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    # A database that answers but was never migrated (or is behind this code) would fail every request.
    require_migrated(get_settings(), get_engine())


def _check_broker() -> None:
    with get_celery().connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def _check_storage() -> None:
    get_blob_store().check()


def _check_ocr() -> None:
    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is not installed")


def _engine_states() -> dict[str, str]:
    """Each engine of the configured chain: ok, or why not. Informational: pages fall back to the next
    engine, so one engine being down does not make the API unready."""
    from pagemill.engines.registry import MODEL_ENGINES, engine_healthy
    from pagemill.jobs.reading import configured_engines

    settings = get_settings()
    states: dict[str, str] = {}
    for name in configured_engines(settings):
        if name in MODEL_ENGINES:
            states[name] = "ok" if engine_healthy(name, settings) else "unavailable"
        else:
            states[name] = "ok" if name != "tesseract" or shutil.which("tesseract") else "not installed"
    return states


@router.get(
    "/ready",
    summary="Readiness",
    responses={503: {"description": "A dependency is not ready; `checks` says which."}},
)
def ready() -> JSONResponse:
    """200 when the database, broker and blob store answer; 503 (with Retry-After) otherwise."""
    checks: dict[str, Any] = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("storage", _check_storage),
        ("ocr", _check_ocr),
    ):
        try:
            check()
            checks[name] = "ok"
        except PagemillError as exc:
            checks[name] = exc.message
        except Exception as exc:  # readiness reports; it never raises
            checks[name] = type(exc).__name__
    ok = all(value == "ok" for key, value in checks.items() if key != "ocr")
    return JSONResponse(
        status_code=200 if ok else 503,
        content={"status": "ready" if ok else "not_ready", "checks": checks, "engines": _engine_states()},
        headers=None if ok else {"Retry-After": "5"},
    )
