"""Admin endpoints (the admin scope): any tenant's API keys and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from api.auth import ADMIN_ERRORS, ActorDep, AdminPrincipal
from api.deps import SessionDep
from api.errors import ErrorResponse
from api.rate_limits import rate_limited
from pagemill.tenancy import audit, service
from pagemill.tenancy.schemas import (
    AuditEventOut,
    AuditList,
    IsoDateTime,
    KeyCreate,
    KeyList,
    KeyOut,
    NewKeyOut,
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ERRORS)


_INVALID: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorResponse, "description": "VALIDATION_ERROR: a field is invalid (details name it)."}
}


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=NewKeyOut,
    responses={
        400: {"model": ErrorResponse, "description": "BAD_REQUEST: the body cannot be decoded (not UTF-8)."},
        **_INVALID,
    },
    summary="Create an API key",
)
@rate_limited
def create_key(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    actor: ActorDep,
    session: SessionDep,
    body: KeyCreate,
) -> NewKeyOut:
    """Create a key for a tenant (created if new). The secret is in this response only."""
    key, secret = service.create_key(
        session,
        tenant_id=body.tenant,
        tier=body.tier,
        actor=actor,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
    )
    return NewKeyOut(**KeyOut.from_key(key).model_dump(), secret=secret)


@router.get("/keys", response_model=KeyList, responses=_INVALID, summary="List API keys")
@rate_limited
def list_keys(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    session: SessionDep,
    tenant: Annotated[str | None, Query(max_length=64, description="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> KeyList:
    """Keys, newest first, without their secrets."""
    keys = service.list_keys(session, tenant_id=tenant, include_revoked=include_revoked)
    return KeyList(items=[KeyOut.from_key(key) for key in keys])


@router.delete(
    "/keys/{key_id}",
    response_model=KeyOut,
    responses={404: {"model": ErrorResponse, "description": "NOT_FOUND: no such key."}, **_INVALID},
    summary="Revoke an API key",
)
@rate_limited
def revoke_key(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    actor: ActorDep,
    session: SessionDep,
    key_id: Annotated[str, Path(max_length=32, description="The key's id (`key_...`).")],
) -> KeyOut:
    """Revoke a key: every replica refuses it from the next request on. Revoking twice is a no-op."""
    return KeyOut.from_key(service.revoke_key(session, key_id, actor=actor))


@router.get("/audit", response_model=AuditList, responses=_INVALID, summary="Read the audit log")
@rate_limited
def list_audit(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    session: SessionDep,
    tenant: Annotated[str | None, Query(max_length=64, description="Only this tenant's events.")] = None,
    action: Annotated[
        str | None, Query(max_length=32, description=f"Only this action: {', '.join(audit.ACTIONS)}.")
    ] = None,
    since: Annotated[IsoDateTime | None, Query(description="Only events at or after this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most events returned.")] = 100,
) -> AuditList:
    """Key creation and revocation, job creation, cancels and purges, batch creation and cancels, and result
    reads: who, what, when, from where."""
    events = audit.list_events(session, tenant_id=tenant, action=action, since=since, limit=limit)
    return AuditList(items=[AuditEventOut.from_event(event) for event in events])
