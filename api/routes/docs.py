"""The interactive API docs (Swagger UI and ReDoc), served with their assets so they work with no internet.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google fonts from CDNs: on an air-gapped or
firewalled host they are blank. The assets here come from the installed ``fastapi-offline`` package (the
Swagger UI and ReDoc bundles, pinned in requirements.lock), so a docs page never leaves the API's origin.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/v1/docs"
REDOC_PATH = "/api/v1/redoc"
ASSETS_PATH = f"{DOCS_PATH}/assets"
"""Under the docs path, which the credential gate leaves open, as it does the schema."""

_ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))

# The pages may load nothing from another origin. Besides keeping them whole offline, this stops ReDoc's
# "powered by" logo, which its bundle always fetches from cdn.redoc.ly, from telling a third party who reads
# the docs (the image then fails quietly and ReDoc hides it). Inline scripts and styles: FastAPI's page
# templates start the UIs with an inline script, and both UIs style elements inline.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ]
)

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    # Behind a proxy that mounts the API under a prefix, the page must ask for the prefixed URLs.
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get(DOCS_PATH)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the API from the browser."""
    root = _root(request)
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        # No schema validator badge: it would send the schema's URL to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


@router.get(REDOC_PATH)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the API reference as one readable page."""
    root = _root(request)
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API reference",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install_docs(app: FastAPI) -> None:
    """Add the docs pages and their assets to ``app`` (create it with ``docs_url=None, redoc_url=None``)."""
    app.include_router(router)
    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")
