"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator

from api.errors import ErrorResponse, install_error_handlers
from api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from api.routes import documents, health, jobs
from pagemill import __version__
from pagemill.logging import configure_logging
from pagemill.settings import get_settings

# Room for the multipart envelope and the small form fields around the file.
_MULTIPART_OVERHEAD = 1024 * 1024


def create_app() -> FastAPI:
    """Build the API: routes, one error handler tree, request ids, a body cap and Prometheus metrics."""
    settings = get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="Pagemill",
        version=__version__,
        summary="Document-to-text jobs: PDFs, scans and photos in; markdown, text and JSON out.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    internal: dict[int | str, dict[str, object]] = {
        500: {"model": ErrorResponse, "description": "INTERNAL_ERROR: a bug; quote the request_id."}
    }
    app.include_router(documents.router, responses=internal)
    app.include_router(jobs.router, responses=internal)
    app.state.api_routes = [*health.router.routes, *documents.router.routes, *jobs.router.routes]
    Instrumentator(excluded_handlers=["/metrics"]).instrument(app).expose(app, include_in_schema=False)
    # Outermost last: the request id must exist before the body cap can answer with it.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_upload_bytes + _MULTIPART_OVERHEAD,
        reported_limit=settings.limits.max_upload_bytes,
    )
    app.add_middleware(RequestIdMiddleware)
    return app
