"""The FastAPI application factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.errors import ErrorResponse, install_error_handlers
from api.http_metrics import instrument
from api.middleware import (
    AdmissionMiddleware,
    BodyLimitMiddleware,
    CredentialGateMiddleware,
    PrincipalMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from api.multipart import MultipartCompletenessMiddleware
from api.rate_limits import limiter
from api.routes import (
    admin,
    batches,
    dead_letters,
    documents,
    events,
    health,
    jobs,
    metrics,
    result_links,
    uploads,
    usage,
    webhook_deliveries,
    webhooks,
)
from api.routes.docs import install_docs
from api.stream_auth import redact_tokens_in_server_log
from api.webhook_docs import install_webhook_docs
from pagemill import __version__
from pagemill.logging import configure_logging
from pagemill.settings import get_settings

# Room for the multipart envelope and the small form fields around the file.
_MULTIPART_OVERHEAD = 1024 * 1024


def create_app() -> FastAPI:
    """Build the API: routes, one error handler tree, request ids, a body cap and Prometheus metrics."""
    settings = get_settings()
    configure_logging(settings)
    redact_tokens_in_server_log()
    app = FastAPI(
        title="Pagemill",
        version=__version__,
        summary="Document-to-text jobs: PDFs, scans and photos in; markdown, text and JSON out.",
        openapi_url="/api/v1/openapi.json",
        # Served by api.routes.docs from installed assets: FastAPI's own pages load them from CDNs.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)
    app.include_router(health.router)
    internal: dict[int | str, dict[str, object]] = {
        500: {"model": ErrorResponse, "description": "INTERNAL_ERROR: a bug; quote the request_id."}
    }
    routers = [
        documents.router,
        uploads.router,
        batches.router,
        jobs.router,
        events.router,
        result_links.router,
        usage.router,
        admin.router,
        dead_letters.router,
        webhooks.router,
        webhook_deliveries.router,
        webhook_deliveries.callbacks,
    ]
    for router in routers:
        app.include_router(router, responses=internal)
    install_webhook_docs(app)
    app.state.api_routes = [route for router in [health.router, *routers] for route in router.routes]
    app.state.limiter = limiter
    instrument(app)
    # Served by our route rather than the instrumentator's: it adds the gauges read at scrape time, and
    # under `pagemill up` the workers' metrics (pagemill.observability.collector).
    app.include_router(metrics.router)
    # Outermost last: the request id must exist before the body cap can answer with it.
    app.add_middleware(MultipartCompletenessMiddleware)
    # Inside the principal middleware: the caller's tier narrows the cap before the body is read.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_upload_bytes + _MULTIPART_OVERHEAD,
        reported_limit=settings.limits.max_upload_bytes,
        read_timeout_s=settings.api.body_read_timeout_s,
    )
    app.add_middleware(PrincipalMiddleware, settings=settings)
    if settings.auth.enabled:
        app.add_middleware(CredentialGateMiddleware, oidc_enabled=settings.auth.oidc.issuer is not None)
    # Outside everything that reads, looks up or stores: overload is refused before any of that.
    app.add_middleware(AdmissionMiddleware, limit=settings.api.max_concurrent_requests)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            # PATCH, HEAD and the tus headers: a browser tus client (tus-js-client) resumes uploads.
            allow_methods=["GET", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "X-Request-ID",
                "Content-Type",
                "Idempotency-Key",
                "Tus-Resumable",
                "Upload-Length",
                "Upload-Defer-Length",
                "Upload-Metadata",
                "Upload-Offset",
                "Upload-Checksum",
                "Upload-Concat",
                "X-HTTP-Method-Override",
                # An EventSource sends it when it reconnects (GET /api/v1/jobs/{id}/events, /api/v1/events).
                "Last-Event-ID",
            ],
            expose_headers=[
                "X-Request-ID",
                "Location",
                "Upload-Offset",
                "Upload-Length",
                "Upload-Defer-Length",
                "Upload-Metadata",
                "Upload-Expires",
                "Tus-Resumable",
                "Tus-Version",
                "Tus-Extension",
                "Tus-Max-Size",
                "Tus-Checksum-Algorithm",
                "Pagemill-Job-Id",
                "Idempotent-Replayed",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
            max_age=600,
        )
    # Outside CORS, so preflight answers (which CORS gives itself) carry the headers too.
    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age_s=settings.api.hsts_max_age_s)
    app.add_middleware(RequestIdMiddleware)
    if not settings.auth.enabled:
        logging.getLogger(__name__).warning(
            "auth.enabled is false: every caller is the default tenant's admin. Only on a trusted network."
        )
    return app
