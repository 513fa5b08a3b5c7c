"""Dead letters (admin scope): work that spent its attempts, listed and replayed (pagemill.dead_letters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from api.auth import ADMIN_ERRORS, ActorDep, AdminPrincipal
from api.deps import ReadScopeDep, SessionDep, SettingsDep, StoreDep
from api.errors import ErrorResponse
from api.rate_limits import also_limited, rate_limited
from pagemill.dead_letters import service
from pagemill.dead_letters.schemas import (
    BulkReplayOut,
    BulkReplayRequest,
    DeadLetterDetail,
    DeadLetterList,
    DeadLetterOut,
)
from pagemill.models import DeadLetterCategory, DeadLetterState
from pagemill.settings import get_settings
from pagemill.tenancy.schemas import IsoDateTime

# The bulk replay is a collection of its own (dead-letter-replays): under /dead-letters/ its path would also
# match /dead-letters/{dead_letter_id}, whose GET it would then advertise in Allow.
router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=ADMIN_ERRORS)

INT32_MAX = 2**31 - 1
DeadLetterId = Annotated[str, Path(max_length=36, description="The dead letter's id.")]
_INVALID: dict[int | str, dict[str, object]] = {
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_ERROR: a parameter is invalid (details name it).",
    }
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "NOT_FOUND: no such dead letter."}
}
_CONFLICT: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorResponse,
        "description": "REPLAY_SOURCE_GONE: the job's original is gone (purged, expired, deleted by "
        "retention, missing from storage) or the password it needs was wiped when it ended. "
        "REPLAY_NOT_ALLOWED: replayed already, or the job is active again, was cancelled, or cached "
        "copies read its pages (`details.reason`).",
    }
}


def _bulk_replay_limit() -> str:
    return get_settings().dead_letters.bulk_replay_rate_limit


@router.get("/dead-letters", response_model=DeadLetterList, responses=_INVALID, summary="List dead letters")
@rate_limited
def list_dead_letters(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    state: Annotated[DeadLetterState | None, Query(description="Only open or only replayed ones.")] = None,
    category: Annotated[DeadLetterCategory | None, Query(description="Only this category.")] = None,
    tenant: Annotated[str | None, Query(max_length=64, description="Only this tenant's.")] = None,
    job_id: Annotated[str | None, Query(max_length=36, description="Only this job's.")] = None,
    since: Annotated[IsoDateTime | None, Query(description="Last failure at or after this time.")] = None,
    until: Annotated[IsoDateTime | None, Query(description="Last failure before this time.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=INT32_MAX, description="Dead letters per page (capped by api.page_size_max).")
    ] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> DeadLetterList:
    """Work that spent its attempts (poison pages, engine failures after the whole chain, timeouts,
    documents that cannot be decoded), newest failure first, with cursor pagination: the job, its failed
    pages, the task, category, error and a fingerprint that names the problem."""
    with sessions() as session:
        rows, next_cursor = service.list_dead_letters(
            session,
            limit=min(limit, settings.api.page_size_max),
            cursor=cursor,
            state=state,
            category=category,
            tenant_id=tenant,
            job_id=job_id,
            since=since,
            until=until,
        )
        return DeadLetterList(items=[DeadLetterOut.from_row(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/dead-letters/{dead_letter_id}",
    response_model=DeadLetterDetail,
    responses={**_NOT_FOUND, **_INVALID},
    summary="Read a dead letter",
)
@rate_limited
def get_dead_letter(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    sessions: ReadScopeDep,
    dead_letter_id: DeadLetterId,
) -> DeadLetterDetail:
    """One dead letter, with the end of its traceback when the failure had one."""
    with sessions() as session:
        return DeadLetterDetail.from_row(service.get_dead_letter(session, dead_letter_id))


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeadLetterOut,
    responses={**_NOT_FOUND, **_CONFLICT, **_INVALID},
    summary="Replay a dead letter",
)
@rate_limited
def replay_dead_letter(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    actor: ActorDep,
    session: SessionDep,
    store: StoreDep,
    dead_letter_id: DeadLetterId,
) -> DeadLetterOut:
    """Run the work again with fresh attempts: its failed pages go back to pending, the job back to
    `running` (no error) and a worker takes it up (`job.started` again, then its final event). Audited
    (`dead_letter.replay`). The dead letter is `replayed`; it opens again if the work fails the same way."""
    row = service.replay(session, store, dead_letter_id, actor=actor)
    return DeadLetterOut.from_row(row)


@router.post(
    "/dead-letter-replays",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkReplayOut,
    responses={
        **_INVALID,
        400: {"model": ErrorResponse, "description": "BAD_REQUEST: the body cannot be decoded."},
        429: {
            "model": ErrorResponse,
            "description": "RATE_LIMITED: over the tier's request rate, or over "
            "dead_letters.bulk_replay_rate_limit bulk replays (see Retry-After).",
        },
    },
    summary="Replay the dead letters of a category",
)
@rate_limited
@also_limited(_bulk_replay_limit)
def replay_dead_letters(
    request: Request,
    response: Response,
    admin: AdminPrincipal,
    actor: ActorDep,
    session: SessionDep,
    store: StoreDep,
    body: BulkReplayRequest,
) -> BulkReplayOut:
    """Replay the open dead letters of one category (of one tenant, failed since a time), oldest first, at
    most `limit` and dead_letters.bulk_replay_max per call; `remaining` says how many are left. Those that
    cannot be replayed are listed in `skipped` with their code. Rate limited apart from other requests
    (dead_letters.bulk_replay_rate_limit); each replay is audited."""
    outcome = service.replay_category(
        session,
        store,
        category=body.category,
        actor=actor,
        since=body.since,
        tenant_id=body.tenant,
        limit=body.limit,
    )
    return BulkReplayOut.from_outcome(outcome)
