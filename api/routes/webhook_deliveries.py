"""Webhook deliveries (of an endpoint, or to jobs' callback URLs) with their attempts, replays, and the
tenant's callback secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal
from api.deps import ReadScopeDep, SessionDep, SettingsDep
from api.errors import ErrorResponse
from api.rate_limits import rate_limited
from api.routes.webhooks import INT32_MAX, INVALID, NOT_FOUND, WebhookId
from pagemill.models import DeliveryState
from pagemill.webhooks import service
from pagemill.webhooks.schemas import (
    CallbackSecretOut,
    DeliveryList,
    DeliveryOut,
    ReplayFailed,
    ReplayResult,
    SecretOut,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=AUTH_ERRORS)
callbacks = APIRouter(prefix="/api/v1/callbacks", tags=["webhooks"], responses=AUTH_ERRORS)
"""Jobs' callback URLs: their secret and deliveries."""

DeliveryId = Annotated[str, Path(max_length=64, description="The delivery's id.")]
_DELIVERY_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "NOT_FOUND: no such webhook or delivery."}
}
StateFilter = Annotated[DeliveryState | None, Query(description="Only deliveries in this state.")]
JobFilter = Annotated[
    str | None, Query(max_length=64, description="Only the deliveries of this job's events.")
]
Limit = Annotated[
    int, Query(ge=1, le=INT32_MAX, description="Deliveries per page (capped by api.page_size_max).")
]
CursorParam = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]


def _page(
    session: Session,
    tenant_id: str,
    webhook_id: str | None,
    state: DeliveryState | None,
    job_id: str | None,
    limit: int,
    cursor: str | None,
) -> DeliveryList:
    rows, attempts, next_cursor = service.list_deliveries(
        session,
        tenant_id=tenant_id,
        endpoint_id=webhook_id,
        state=state,
        job_id=job_id,
        limit=limit,
        cursor=cursor,
    )
    items = [DeliveryOut.from_rows(row, attempts[row.id]) for row in rows]
    return DeliveryList(items=items, next_cursor=next_cursor)


# --------------------------------------------------------------------------------------------------
# An endpoint's deliveries


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses={**NOT_FOUND, **INVALID},
    summary="List a webhook's deliveries",
)
@rate_limited
def list_deliveries(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    webhook_id: WebhookId,
    state: StateFilter = None,
    job_id: JobFilter = None,
    limit: Limit = 20,
    cursor: CursorParam = None,
) -> DeliveryList:
    """The endpoint's deliveries, newest first, each with every attempt: status, latency, the first KiB of
    the answer, the error."""
    with sessions() as session:
        return _page(
            session,
            principal.tenant_id,
            webhook_id,
            state,
            job_id,
            min(limit, settings.api.page_size_max),
            cursor,
        )


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses={**_DELIVERY_NOT_FOUND, **INVALID},
    summary="Read one delivery of a webhook",
)
@rate_limited
def get_delivery(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
) -> DeliveryOut:
    """One delivery with every attempt."""
    with sessions() as session:
        delivery, attempts = service.get_delivery(
            session, tenant_id=principal.tenant_id, endpoint_id=webhook_id, delivery_id=delivery_id
        )
        return DeliveryOut.from_rows(delivery, attempts)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses={**_DELIVERY_NOT_FOUND, **INVALID},
    summary="Replay one delivery",
)
@rate_limited
def replay_delivery(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
) -> DeliveryOut:
    """Send a delivery again now, whatever its state, with the same `webhook-id` and a fresh retry schedule.
    A disabled endpoint is sent nothing (the delivery ends dead): enable it first."""
    delivery, attempts = service.replay(
        session, tenant_id=principal.tenant_id, endpoint_id=webhook_id, delivery_id=delivery_id
    )
    return DeliveryOut.from_rows(delivery, attempts)


@router.post(
    "/{webhook_id}/replay-failed",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayResult,
    responses={**NOT_FOUND, **INVALID},
    summary="Replay a webhook's failed deliveries since a time",
)
@rate_limited
def replay_failed_deliveries(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    webhook_id: WebhookId,
    body: ReplayFailed,
) -> ReplayResult:
    """Send again every `failed` or `dead` delivery of the endpoint made since `since` (at most 1000 per
    call, oldest first), e.g. after it was down or disabled."""
    ids = service.replay_failed(
        session, tenant_id=principal.tenant_id, endpoint_id=webhook_id, since=body.since
    )
    return ReplayResult(replayed=len(ids), delivery_ids=ids)


# --------------------------------------------------------------------------------------------------
# Job callback URLs: their secret and deliveries


@callbacks.get(
    "/secret",
    response_model=CallbackSecretOut,
    responses={
        404: {"model": ErrorResponse, "description": "NOT_FOUND: the tenant has no callback secret yet."},
        **INVALID,
    },
    summary="Read the callback secret's record",
)
@rate_limited
def get_callback_secret(
    request: Request, response: Response, principal: CurrentPrincipal, sessions: ReadScopeDep
) -> CallbackSecretOut:
    """When the tenant's callback secret was made and last rotated (never the secret itself)."""
    with sessions() as session:
        return CallbackSecretOut.from_row(service.get_callback_secret(session, principal.tenant_id))


@callbacks.post(
    "/secret",
    response_model=SecretOut,
    responses={
        201: {"model": SecretOut, "description": "The tenant's first callback secret."},
        **INVALID,
        422: {
            "model": ErrorResponse,
            "description": "SECRETS_NOT_CONFIGURED: no secrets.key to keep the secret sealed.",
        },
    },
    summary="Make or rotate the callback secret",
)
@rate_limited
def renew_callback_secret(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    settings: SettingsDep,
) -> SecretOut:
    """The secret that signs the events sent to jobs' `callback_url` (submissions with a callback_url need
    it): made by the first call (201), rotated by the next ones (200: the old one keeps signing beside the
    new one for webhooks.rotation_grace_s). The secret is in this response only. Audited."""
    row, secret, made = service.renew_callback_secret(
        session, settings, tenant_id=principal.tenant_id, actor=actor
    )
    if made:
        response.status_code = status.HTTP_201_CREATED
    return SecretOut(secret=secret, previous_secret_expires_at=row.previous_secret_expires_at)


@callbacks.get(
    "/deliveries",
    response_model=DeliveryList,
    responses=INVALID,
    summary="List deliveries to jobs' callback URLs",
)
@rate_limited
def list_callback_deliveries(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    state: StateFilter = None,
    job_id: JobFilter = None,
    limit: Limit = 20,
    cursor: CursorParam = None,
) -> DeliveryList:
    """Deliveries of job events to the jobs' callback URLs, newest first, each with every attempt."""
    with sessions() as session:
        return _page(
            session, principal.tenant_id, None, state, job_id, min(limit, settings.api.page_size_max), cursor
        )


@callbacks.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses={**_DELIVERY_NOT_FOUND, **INVALID},
    summary="Read one callback delivery",
)
@rate_limited
def get_callback_delivery(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    delivery_id: DeliveryId,
) -> DeliveryOut:
    """One callback delivery with every attempt."""
    with sessions() as session:
        delivery, attempts = service.get_delivery(
            session, tenant_id=principal.tenant_id, endpoint_id=None, delivery_id=delivery_id
        )
        return DeliveryOut.from_rows(delivery, attempts)


@callbacks.post(
    "/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses={**_DELIVERY_NOT_FOUND, **INVALID},
    summary="Replay one callback delivery",
)
@rate_limited
def replay_callback_delivery(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    delivery_id: DeliveryId,
) -> DeliveryOut:
    """Send a callback delivery again now, with the same `webhook-id` and a fresh retry schedule."""
    delivery, attempts = service.replay(
        session, tenant_id=principal.tenant_id, endpoint_id=None, delivery_id=delivery_id
    )
    return DeliveryOut.from_rows(delivery, attempts)


@callbacks.post(
    "/replay-failed",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayResult,
    responses=INVALID,
    summary="Replay failed callback deliveries since a time",
)
@rate_limited
def replay_failed_callback_deliveries(
    request: Request, response: Response, principal: CurrentPrincipal, session: SessionDep, body: ReplayFailed
) -> ReplayResult:
    """Send again every `failed` or `dead` callback delivery made since `since` (at most 1000 per call)."""
    ids = service.replay_failed(session, tenant_id=principal.tenant_id, endpoint_id=None, since=body.since)
    return ReplayResult(replayed=len(ids), delivery_ids=ids)
