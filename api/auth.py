"""Who is calling: API keys (Bearer or X-API-Key) and OIDC bearer tokens, as dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.deps import SettingsDep
from api.errors import ErrorResponse, request_id_of
from pagemill.db import autocommit_scope, session_scope
from pagemill.errors import Forbidden, Unauthorized
from pagemill.settings import Settings
from pagemill.tenancy import service
from pagemill.tenancy.keys import KEY_PREFIX
from pagemill.tenancy.oidc import get_verifier
from pagemill.tenancy.principal import Actor, Principal

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`pm_live_...`) or, when configured, an access token of the OIDC issuer.",
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key (`pm_live_...`)."
)


def credentials_of(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The API key (X-API-Key) and the bearer token (Authorization: Bearer) a request carries."""
    api_key = (headers.get("x-api-key") or "").strip() or None
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return api_key, bearer


def resolve_principal(settings: Settings, api_key: str | None, bearer: str | None) -> Principal:
    """The caller's principal; Unauthorized without a valid key or token. Blocking: the key lookup and, at
    most once a minute, its last-used time, each committed by itself (no BEGIN/COMMIT round trips on
    Postgres), so no connection is held while the request's body is read or stored."""
    if not settings.auth.enabled:
        return service.anonymous_principal()
    if api_key is None and bearer is not None and bearer.startswith(KEY_PREFIX):
        api_key = bearer
    if api_key:
        with autocommit_scope() as session:
            return service.authenticate_key(session, settings, api_key)
    if bearer is not None and (verifier := get_verifier(settings.auth.oidc)) is not None:
        principal = verifier.verify(bearer)
        with session_scope() as session:
            service.ensure_token_tenant(session, principal)
        return principal
    if bearer is not None:
        raise Unauthorized("The API key is not valid.", reason="malformed")
    raise Unauthorized()


async def authenticate(
    request: Request,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """The caller's principal; 401 UNAUTHORIZED without a valid key or token.

    Normally resolved already by ``api.middleware.PrincipalMiddleware``, before the body was read; the
    security parameters document the schemes in the OpenAPI schema.
    """
    resolved = getattr(request.state, "principal", None)
    if isinstance(resolved, Principal):
        return resolved
    key = api_key.strip() if api_key else None
    token = bearer.credentials.strip() if bearer is not None else None
    principal = await run_in_threadpool(resolve_principal, settings, key, token)
    # The rate limiter's key function and the audit actor read it from here.
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    """The caller's principal if it holds the admin scope; 403 FORBIDDEN otherwise.

    Async because it does no I/O: FastAPI runs sync dependencies in a thread pool, a hop per request.
    """
    if not principal.is_admin:
        raise Forbidden("This endpoint needs a key with the admin scope.", scope="admin")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


async def current_actor(request: Request, principal: CurrentPrincipal) -> Actor:
    """The caller as the audit log records it: principal, address, user agent and request id."""
    return Actor(
        subject=principal.subject,
        tenant_id=principal.tenant_id,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=request_id_of(request),
    )


ActorDep = Annotated[Actor, Depends(current_actor)]


AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {
        "model": ErrorResponse,
        "description": "UNAUTHORIZED: no key or token, or an unknown, revoked or expired one.",
    },
    429: {
        "model": ErrorResponse,
        "description": "RATE_LIMITED: over the tier's request rate (see Retry-After and X-RateLimit-*).",
    },
}
ADMIN_ERRORS: dict[int | str, dict[str, object]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorResponse, "description": "FORBIDDEN: the key lacks the admin scope."},
}
