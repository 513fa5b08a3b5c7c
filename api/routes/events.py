"""Live events: Server-Sent Events and a WebSocket per job, the tenant's SSE stream, and stream tokens."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response, WebSocket, status
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.websockets import WebSocketDisconnect

from api.auth import AUTH_ERRORS, CurrentPrincipal, credentials_of, resolve_principal
from api.deps import ReadScopeDep, SettingsDep
from api.errors import ErrorResponse
from api.rate_limits import count_request, rate_limited
from api.routes.jobs import INT32_MAX, JobId
from api.stream_auth import stream_principal, stream_token_of
from pagemill.db import autocommit_scope
from pagemill.errors import AccessError, InputError, PagemillError, ValidationFailed
from pagemill.events import streams
from pagemill.events.hub import StreamEvent
from pagemill.events.schemas import StreamTokenIn, StreamTokenOut
from pagemill.settings import Settings, get_settings
from pagemill.tenancy.principal import Principal

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["events"], responses=AUTH_ERRORS)

INT64_MAX = 2**63 - 1
RESUME_WAIT_S = 2.0
"""How long the job WebSocket waits for a first message ``{"last_seq": N}`` before it starts from the
job's first event (a URL with ``?last_seq=`` starts at once)."""
SEND_TIMEOUT_S = 60.0
"""A client that takes no data for this long is dropped (it reconnects with Last-Event-ID)."""
# RFC 6455 close codes (and 1013 from the IANA registry).
CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

_STREAM = {
    "description": "A `text/event-stream`: `id:` (see the endpoint), `event:` (the type, e.g. "
    "`job.progress`) and `data:` (the CloudEvents 1.0 JSON of the event); a comment line every "
    "`events.stream_heartbeat_s` seconds.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
_INVALID: dict[int | str, dict[str, object]] = {
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_ERROR: a parameter is invalid (details name it).",
    },
    503: {"model": ErrorResponse, "description": "SERVICE_UNAVAILABLE: a dependency is down; retry."},
}
_EVENTS_OFF: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorResponse,
        "description": "EVENTS_DISABLED: this server writes no events (events.enabled is off); poll instead.",
    }
}
_TOKEN_REFUSED: dict[int | str, dict[str, object]] = {
    403: {
        "model": ErrorResponse,
        "description": "FORBIDDEN: the stream token is for one job only, and this is not its stream.",
    }
}
StreamToken = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="A stream token (POST /api/v1/stream-tokens), for clients that cannot send headers "
        "(a browser's EventSource). Never an API key.",
    ),
]


@router.post(
    "/stream-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamTokenOut,
    responses={
        404: {"model": ErrorResponse, "description": "NOT_FOUND: no such job (or another tenant's)."},
        **_INVALID,
    },
    summary="Make a stream token",
)
@rate_limited
def create_stream_token(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    body: StreamTokenIn | None = None,
) -> StreamTokenOut:
    """A short-lived token (`events.stream_token_ttl_s`) that opens the tenant's event streams, or one job's
    with `job_id`, as `?token=` in the stream's URL: for browsers, whose EventSource and WebSocket cannot
    send an Authorization header. API keys are never accepted in a URL."""
    with sessions() as session:
        made = streams.make_stream_token(session, settings, principal, body.job_id if body else None)
    return StreamTokenOut.of(made, settings.events.stream_token_ttl_s)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: _STREAM,
        204: {"description": "The job has ended and the client has all its events: nothing more will come."},
        404: {"model": ErrorResponse, "description": "NOT_FOUND: no such job (or another tenant's)."},
        **_EVENTS_OFF,
        **_TOKEN_REFUSED,
        **_INVALID,
    },
    summary="Stream a job's events (SSE)",
)
@rate_limited
def job_events(
    request: Request,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    job_id: JobId,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=INT32_MAX, description="Resume after this `id:` (seq)."),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            alias="last_event_id",
            ge=0,
            le=INT32_MAX,
            description="Resume after this seq, for clients that cannot send Last-Event-ID (the header "
            "wins).",
        ),
    ] = None,
    token: StreamToken = None,
) -> Response:
    """The job's events as Server-Sent Events, `id:` = the event's sequence number in the job (1, 2, 3
    ...). From the first event, or after `Last-Event-ID` with no gap and no duplicate, also on another API
    replica; then live. The stream closes after the job's final event (`job.succeeded`, `job.failed`,
    `job.cancelled` or `job.expired`); a job that has ended replays what the client missed and closes, and
    answers 204 when there is nothing left (which tells an EventSource to stop reconnecting)."""
    streams.require_events(settings)
    after_seq = last_event_id if last_event_id is not None else (after or 0)
    with sessions() as session:
        start = streams.open_job_stream(session, principal.tenant_id, job_id, after_seq)
    if start.caught_up:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    events = streams.job_stream(start, after_seq, settings)
    return _event_source(events, lambda event: event.seq, settings)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: _STREAM, **_EVENTS_OFF, **_TOKEN_REFUSED, **_INVALID},
    summary="Stream the tenant's events (SSE)",
)
@rate_limited
def tenant_events(
    request: Request,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    types: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="Only these event types, comma-separated (e.g. `job.succeeded,job.failed`).",
        ),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=INT64_MAX, description="Resume after this `id:`."),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            alias="last_event_id",
            ge=0,
            le=INT64_MAX,
            description="Resume after this id, for clients that cannot send Last-Event-ID (the header wins).",
        ),
    ] = None,
    token: StreamToken = None,
) -> Response:
    """Every event of the tenant's jobs and batches as Server-Sent Events (for dashboards), `id:` = the
    event's global id. Without `Last-Event-ID`, from now on; with it, from there with no gap and no
    duplicate, also on another API replica. Never closes by itself."""
    streams.require_events(settings)
    wanted = _event_types(types)
    after_id = last_event_id if last_event_id is not None else after
    events = streams.tenant_stream(principal.tenant_id, wanted, after_id, settings)
    return _event_source(events, lambda event: event.id, settings)


def _event_types(types: str | None) -> frozenset[str] | None:
    if types is None:
        return None
    wanted = frozenset(name.strip() for name in types.split(",") if name.strip())
    unknown = sorted(wanted - streams.STREAM_TYPES)
    if unknown or not wanted:
        raise ValidationFailed(
            f"Unknown event types: {', '.join(unknown) or '(none given)'}.",
            errors=[
                {"field": "types", "message": f"one or more of {', '.join(sorted(streams.STREAM_TYPES))}"}
            ],
        )
    return wanted


def _event_source(
    events: AsyncGenerator[StreamEvent], id_of: Callable[[StreamEvent], int | None], settings: Settings
) -> EventSourceResponse:
    async def frames() -> AsyncIterator[ServerSentEvent]:
        async with contextlib.aclosing(events):
            async for event in events:
                yield ServerSentEvent(data=event.body, event=event.type, id=str(id_of(event)))

    return EventSourceResponse(
        frames(),
        ping=settings.events.stream_heartbeat_s,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=SEND_TIMEOUT_S,
    )


@router.websocket("/jobs/{job_id}/ws")
async def job_websocket(websocket: WebSocket, job_id: str) -> None:
    """The job's events as WebSocket text messages ``{"seq": N, "event": {CloudEvent}}``; see docs/api.md.
    Its parameters are checked after the handshake, so that every refusal is a close code."""
    settings = get_settings()
    await websocket.accept()
    try:
        principal = await _socket_principal(websocket, settings)
        wait_s = await anyio.to_thread.run_sync(count_request, principal)
        if wait_s is not None:
            await _close(websocket, CLOSE_TRY_AGAIN_LATER, f"RATE_LIMITED: retry after {wait_s} s")
            return
        streams.require_events(settings)
        start = await anyio.to_thread.run_sync(_open_job, principal, job_id)
        after_seq = await _resume_point(websocket)
        await _send_events(websocket, streams.job_stream(start, after_seq, settings))
    except WebSocketDisconnect:
        return
    except (AccessError, InputError) as error:
        await _close(websocket, CLOSE_POLICY_VIOLATION, f"{error.code}: {error.message}")
    except Exception as error:
        if not isinstance(error, PagemillError):
            log.exception("job WebSocket failed")
        await _close(websocket, CLOSE_INTERNAL_ERROR, "INTERNAL_ERROR")


async def _socket_principal(websocket: WebSocket, settings: Settings) -> Principal:
    api_key, bearer = credentials_of(websocket.headers)
    token = stream_token_of(websocket.scope)
    if api_key is None and bearer is None and token is not None and settings.auth.enabled:
        return stream_principal(settings, token, websocket.scope)
    return await anyio.to_thread.run_sync(resolve_principal, settings, api_key, bearer)


def _open_job(principal: Principal, job_id: str) -> streams.JobStreamStart:
    with autocommit_scope() as session:
        return streams.open_job_stream(session, principal.tenant_id, job_id, 0)


async def _resume_point(websocket: WebSocket) -> int:
    """Where the client resumes: ``?last_seq=N``, else its first message ``{"last_seq": N}`` if one comes
    within RESUME_WAIT_S, else 0 (from the first event)."""
    query = websocket.query_params.get("last_seq")
    if query is not None:
        return _valid_seq(int(query) if query.isdigit() else None, "?last_seq=N")
    with anyio.move_on_after(RESUME_WAIT_S):
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", CLOSE_NORMAL))
        try:
            sent: Any = json.loads(message.get("text") or message.get("bytes") or b"")
        except ValueError:
            sent = None
        return _valid_seq(sent.get("last_seq") if isinstance(sent, dict) else None, '{"last_seq": N}')
    return 0


def _valid_seq(value: object, form: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32_MAX:
        raise ValidationFailed(f"Resume with {form}, N a sequence number (0 for every event).")
    return value


async def _send_events(websocket: WebSocket, events: AsyncGenerator[StreamEvent]) -> None:
    """Send each event; close 1000 after the last. A disconnect (or the server shutting down, which
    uvicorn answers with 1012 itself) ends it at once."""
    with _one_error():
        async with anyio.create_task_group() as tasks:

            async def watch_disconnect() -> None:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass  # nothing else is expected from the client after its first message
                tasks.cancel_scope.cancel()

            tasks.start_soon(watch_disconnect)
            async with contextlib.aclosing(events):
                async for event in events:
                    await websocket.send_text(streams.websocket_message(event))
            await _close(websocket, CLOSE_NORMAL, "")
            tasks.cancel_scope.cancel()


@contextlib.contextmanager
def _one_error() -> Iterator[None]:
    """Re-raise the one error of a task group as itself (anyio wraps it in an ExceptionGroup)."""
    try:
        yield
    except BaseExceptionGroup as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        raise error from None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A close reason is at most 123 bytes (RFC 6455 5.5: control frame payloads are 125, less the code).
    text = reason.encode()[:123].decode(errors="ignore")
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=text)
