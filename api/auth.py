"""Who is calling: API keys (Bearer or X-API-Key) and OIDC bearer tokens, as dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionDep, SettingsDep
from api.errors import ErrorResponse, request_id_of
from pagemill.errors import Forbidden, Unauthorized
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


def authenticate(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """The caller's principal; 401 UNAUTHORIZED without a valid key or token."""
    if not settings.auth.enabled:
        principal = service.anonymous_principal()
    elif api_key:
        principal = service.authenticate_key(session, settings, api_key.strip())
    elif bearer is not None and bearer.credentials.startswith(KEY_PREFIX):
        principal = service.authenticate_key(session, settings, bearer.credentials.strip())
    elif bearer is not None and (verifier := get_verifier(settings.auth.oidc)) is not None:
        principal = verifier.verify(bearer.credentials)
        service.ensure_token_tenant(session, principal)
    elif bearer is not None:
        raise Unauthorized("The API key is not valid.", reason="malformed")
    else:
        raise Unauthorized()
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
