"""Liveness, readiness (both open and cheap) and the detailed health report (admin scope)."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.auth import ADMIN_ERRORS, AdminPrincipal
from api.deps import SettingsDep
from pagemill.errors import PagemillError
from pagemill.observability import service
from pagemill.observability.checks import check_broker, check_database_migrated, check_ocr, check_storage
from pagemill.observability.schemas import HealthReport
from pagemill.settings import get_settings

router = APIRouter(prefix="/api/v1/health", tags=["health"])


@router.get("/live", summary="Liveness")
def live() -> dict[str, str]:
    """200 while the process can answer; it does not look at dependencies (a restart would not fix them)."""
    return {"status": "ok"}


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
        ("database", check_database_migrated),
        ("broker", check_broker),
        ("storage", check_storage),
        ("ocr", check_ocr),
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


@router.get("", response_model=HealthReport, responses=ADMIN_ERRORS, summary="Detailed health")
def detailed(admin: AdminPrincipal, settings: SettingsDep) -> HealthReport:
    """Every part, checked now: the database, broker and blob store, each engine of the default chain (each
    with its latency), what waits on each queue and since when, the live workers per queue (from their
    heartbeats) and whether the schema is migrated to this release. Always 200: ``status`` sums it up. For
    operators (admin scope); probes use ``/live`` and ``/ready``, which stay cheap."""
    return service.health_report(settings)
