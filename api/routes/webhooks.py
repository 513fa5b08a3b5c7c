"""Webhook endpoints: register, list, change, delete, rotate their secret, send a test ping."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal
from api.deps import ReadScopeDep, SessionDep, SettingsDep
from api.errors import ErrorResponse
from api.rate_limits import rate_limited
from pagemill.webhooks import service
from pagemill.webhooks.schemas import (
    DeliveryOut,
    SecretOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=AUTH_ERRORS)

INT32_MAX = 2**31 - 1
WebhookId = Annotated[str, Path(max_length=64, description="The webhook's id, as returned when it was made.")]
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "NOT_FOUND: no such webhook (or another tenant's)."}
}
INVALID: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "BAD_REQUEST: the body cannot be decoded (not UTF-8)."},
    422: {"model": ErrorResponse, "description": "VALIDATION_ERROR: a field is invalid (details name it)."},
    503: {"model": ErrorResponse, "description": "SERVICE_UNAVAILABLE: a dependency is down; retry."},
}
_URL_REFUSED: dict[int | str, dict[str, object]] = {
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_ERROR (a field is invalid), URL_FORBIDDEN (the URL is not http(s), has "
        "userinfo, or its host is a literal address or localhost name the SSRF guard refuses: "
        "details.reason) or SECRETS_NOT_CONFIGURED (no secrets.key to keep the secret sealed).",
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses={
        **INVALID,
        409: {
            "model": ErrorResponse,
            "description": "CONFLICT: the tenant has webhooks.max_endpoints webhooks already.",
        },
        **_URL_REFUSED,
    },
    summary="Register a webhook endpoint",
)
@rate_limited
def create_webhook(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    body: WebhookCreate,
) -> WebhookCreated:
    """Register a URL that receives the tenant's events (all but job.page_completed, or the types named),
    signed per Standard Webhooks. The signing secret is in this response only. Audited."""
    endpoint, secret = service.create_endpoint(
        session, settings, tenant_id=principal.tenant_id, actor=actor, body=body
    )
    response.headers["Location"] = f"/api/v1/webhooks/{endpoint.id}"
    return WebhookCreated(**WebhookOut.from_endpoint(endpoint).model_dump(), secret=secret)


@router.get("", response_model=WebhookList, responses=INVALID, summary="List webhook endpoints")
@rate_limited
def list_webhooks(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, le=INT32_MAX, description="Webhooks per page (capped by api.page_size_max).")
    ] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> WebhookList:
    """The tenant's webhook endpoints, newest first, with cursor pagination (never their secrets)."""
    with sessions() as session:
        rows, next_cursor = service.list_endpoints(
            session, principal.tenant_id, limit=min(limit, settings.api.page_size_max), cursor=cursor
        )
        return WebhookList(items=[WebhookOut.from_endpoint(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses={**NOT_FOUND, **INVALID},
    summary="Read a webhook endpoint",
)
@rate_limited
def get_webhook(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    webhook_id: WebhookId,
) -> WebhookOut:
    """One endpoint: its URL, types, state (and why it was disabled), failing since when."""
    with sessions() as session:
        return WebhookOut.from_endpoint(service.get_endpoint(session, principal.tenant_id, webhook_id))


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses={**NOT_FOUND, **INVALID, **_URL_REFUSED},
    summary="Change a webhook endpoint",
)
@rate_limited
def update_webhook(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    webhook_id: WebhookId,
    body: WebhookUpdate,
) -> WebhookOut:
    """Change the URL, label or event types, or enable (after a 410 or failures) or disable it. Audited."""
    endpoint = service.update_endpoint(
        session, settings, tenant_id=principal.tenant_id, endpoint_id=webhook_id, actor=actor, body=body
    )
    return WebhookOut.from_endpoint(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, **INVALID},
    summary="Delete a webhook endpoint",
)
@rate_limited
def delete_webhook(
    request: Request,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    webhook_id: WebhookId,
) -> Response:
    """Delete an endpoint and its delivery records; nothing more is sent to it. Audited."""
    service.delete_endpoint(session, tenant_id=principal.tenant_id, endpoint_id=webhook_id, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=SecretOut,
    responses={
        **NOT_FOUND,
        **INVALID,
        422: {
            "model": ErrorResponse,
            "description": "SECRETS_NOT_CONFIGURED: no secrets.key to keep the secret sealed.",
        },
    },
    summary="Rotate a webhook's signing secret",
)
@rate_limited
def rotate_webhook_secret(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
    webhook_id: WebhookId,
) -> SecretOut:
    """A new signing secret, in this response only. The old one keeps signing beside it for
    webhooks.rotation_grace_s: each attempt then carries two `v1,` signatures, and a receiver that knows
    either secret verifies it. Audited."""
    endpoint, secret = service.rotate_secret(
        session, settings, tenant_id=principal.tenant_id, endpoint_id=webhook_id, actor=actor
    )
    return SecretOut(secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at)


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses={**NOT_FOUND, **INVALID},
    summary="Send a test ping to a webhook endpoint",
)
@rate_limited
def test_webhook(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    webhook_id: WebhookId,
) -> DeliveryOut:
    """Send a `webhook.ping` event to this endpoint only (also when it is disabled: to check it is back
    before enabling it). Answers at once with the delivery; follow it in the endpoint's deliveries."""
    delivery = service.ping(session, settings, tenant_id=principal.tenant_id, endpoint_id=webhook_id)
    return DeliveryOut.from_rows(delivery, [])
