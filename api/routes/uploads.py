"""Resumable uploads: tus 1.0 (core, creation, creation-with-upload, creation-defer-length, expiration,
checksum, termination) at /api/v1/uploads.

Headers in, headers out; a PATCH body is read as a stream (``request.stream()``) and handed to the upload
service in 1 MiB pieces on worker threads, so neither memory nor the event loop carries an upload.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Request, Response, status
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal, credentials_of, resolve_principal
from api.deps import SessionScopeDep, SettingsDep, StoreDep
from api.errors import ErrorResponse, error_response
from api.rate_limits import rate_limited
from pagemill.errors import (
    MalformedRequest,
    PagemillError,
    RequestTimeout,
    TusVersionUnsupported,
    UnsupportedMediaType,
)
from pagemill.tenancy.principal import Principal
from pagemill.uploads import patch as patching
from pagemill.uploads import service
from pagemill.uploads.patch import Patch
from pagemill.uploads.schemas import CHECKSUM_ALGORITHMS, PatchResult, UploadInfo, upload_cap

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination"
OFFSET_STREAM = "application/offset+octet-stream"
# Bytes gathered from the stream before a hop to a worker thread: few hops, little memory.
_FLUSH_BYTES = 1024 * 1024


class TusRoute(APIRoute):
    """Every tus response carries Tus-Resumable, errors included (rendered as the one error body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except PagemillError as exc:
                response = error_response(request, exc.http_status, exc.to_dict(), exc.headers() or None)
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


router = APIRouter(prefix="/api/v1", tags=["uploads"], responses=AUTH_ERRORS, route_class=TusRoute)


def _error(text: str) -> dict[str, object]:
    return {"model": ErrorResponse, "description": text}


_COMMON: dict[int | str, dict[str, object]] = {
    400: _error("BAD_REQUEST (a tus header is malformed) or CHECKSUM_ALGORITHM_UNSUPPORTED."),
    404: _error("NOT_FOUND: no such upload for this tenant (or it was deleted)."),
    410: _error("UPLOAD_EXPIRED: the upload passed uploads.expire_after_s unfinished."),
    412: _error("TUS_VERSION_UNSUPPORTED: Tus-Resumable is not 1.0.0 (Tus-Version says what is)."),
    422: _error("VALIDATION_ERROR: a header is not valid (e.g. Idempotency-Key)."),
    503: _error("SERVICE_UNAVAILABLE: storage or database down; retry after Retry-After."),
}
_BODY_ERRORS: dict[int | str, dict[str, object]] = {
    409: _error(
        "UPLOAD_OFFSET_MISMATCH (Upload-Offset is not the stored offset: ask HEAD), or CONFLICT / "
        "UPLOAD_ALREADY_USED from the job made at the last byte.",
    ),
    413: _error("FILE_TOO_LARGE: over the tier's file size, or the body goes past Upload-Length."),
    415: _error(
        "UNSUPPORTED_MEDIA_TYPE (not application/offset+octet-stream), or UNSUPPORTED_TYPE "
        "(the finished upload is not a supported document; the upload stays, complete).",
    ),
    422: _error(
        "VALIDATION_ERROR (an option in Upload-Metadata), EMPTY_FILE, ENGINE_NOT_CONFIGURED, URL_FORBIDDEN "
        "(its callback_url)."
    ),
    423: _error("UPLOAD_LOCKED: another PATCH of this upload is being written; see Retry-After."),
    429: _error("RATE_LIMITED, or QUOTA_EXCEEDED at the last byte (the upload stays, complete)."),
    460: _error("CHECKSUM_MISMATCH: the body is not what Upload-Checksum says; nothing of it was kept."),
}


def _require_tus(tus_resumable: str | None) -> None:
    if tus_resumable != TUS_VERSION:
        raise TusVersionUnsupported(sent=tus_resumable)


def _non_negative(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise MalformedRequest(f"{name} must be a non-negative integer.", header=name)
    return int(value)


def _declared(request: Request) -> int | None:
    """The body's Content-Length (None when chunked)."""
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def _upload_headers(info: UploadInfo) -> dict[str, str]:
    headers = {
        "Upload-Offset": str(info.offset),
        # Postgres hands back its session's zone; an HTTP-date is in GMT.
        "Upload-Expires": format_datetime(info.expires_at.astimezone(UTC), usegmt=True),
        "Cache-Control": "no-store",
    }
    if info.metadata:
        headers["Upload-Metadata"] = info.metadata
    if info.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(info.length)
    return headers


def _result_response(
    request: Request, result: PatchResult, status_code: int, *, location: str | None
) -> Response:
    """The answer to a PATCH (or a creation with a body): the new offset and, at the last byte, the job."""
    headers = _upload_headers(result.upload)
    if result.job_error is not None:
        error = result.job_error
        return error_response(request, error.http_status, error.to_dict(), {**error.headers(), **headers})
    if result.job is not None:
        headers["Pagemill-Job-Id"] = result.job.id
        headers["Location"] = f"/api/v1/jobs/{result.job.id}"
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
    if location is not None:
        headers["Location"] = location
    return Response(status_code=status_code, headers=headers)


async def _receive(request: Request, patch: Patch, background: BackgroundTasks) -> PatchResult:
    """Stream the body into ``patch`` and keep it. A client that goes away mid-body keeps what arrived
    (unless it sent a checksum); a body that stops arriving keeps it too, and is answered 408."""
    whole = True
    stalled: RequestTimeout | None = None
    gathered = bytearray()
    try:
        try:
            async for piece in request.stream():
                gathered += piece
                if len(gathered) >= _FLUSH_BYTES:
                    data = bytes(gathered)
                    gathered.clear()
                    await run_in_threadpool(patch.write, data)
        except ClientDisconnect:
            whole = False
        except RequestTimeout as exc:
            whole, stalled = False, exc
        if gathered:
            await run_in_threadpool(patch.write, bytes(gathered))
        result = await run_in_threadpool(patch.finish, whole_body=whole, after_response=background.add_task)
    except BaseException:
        await run_in_threadpool(patch.abandon)
        raise
    if stalled is not None:
        raise stalled
    return result


_TUS_RESUMABLE = Header(alias="Tus-Resumable", description="Must be 1.0.0.")


# Not in the OpenAPI schema: a protocol handshake that needs no key (docs/api.md describes it).
@router.options(
    "/uploads", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, include_in_schema=False
)
async def upload_options(request: Request, settings: SettingsDep) -> Response:
    """The tus versions, extensions, checksum algorithms and largest upload (`Tus-Max-Size`: the caller's
    tier cap when the request carries a valid key, else the server's) this server supports."""
    return Response(status_code=204, headers=await _capabilities(request, settings))


@router.options(
    "/uploads/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    include_in_schema=False,
)
async def upload_url_options(request: Request, settings: SettingsDep, upload_id: str) -> Response:
    """As `OPTIONS /api/v1/uploads`."""
    return Response(status_code=204, headers=await _capabilities(request, settings))


async def _capabilities(request: Request, settings: SettingsDep) -> dict[str, str]:
    principal: Principal | None = None
    api_key, bearer = credentials_of(request.headers)
    if api_key or bearer:
        try:
            principal = await run_in_threadpool(resolve_principal, settings, api_key, bearer)
        except PagemillError:
            principal = None  # capabilities are public; an invalid key just gets the server's cap
    return {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(upload_cap(settings, principal)),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


@router.post(
    "/uploads",
    status_code=status.HTTP_201_CREATED,
    response_class=Response,
    responses={**_COMMON, **_BODY_ERRORS},
    summary="Create a tus upload",
)
@rate_limited
async def create_upload(
    request: Request,
    sessions: SessionScopeDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    actor: ActorDep,
    background: BackgroundTasks,
    tus_resumable: Annotated[str | None, _TUS_RESUMABLE] = None,
    upload_length: Annotated[
        str | None, Header(alias="Upload-Length", description="The upload's size in bytes.")
    ] = None,
    upload_defer_length: Annotated[
        str | None, Header(alias="Upload-Defer-Length", description="1: the size comes with a later PATCH.")
    ] = None,
    upload_metadata: Annotated[
        str | None,
        Header(
            alias="Upload-Metadata",
            description="tus metadata (`key base64value` pairs): filename, formats, page_range, ocr_mode, "
            "engine, password, callback_url, submit (false: no job at the last byte; POST "
            "/api/v1/documents with upload_id makes it).",
        ),
    ] = None,
    content_type: Annotated[str | None, Header(alias="Content-Type")] = None,
    upload_checksum: Annotated[str | None, Header(alias="Upload-Checksum")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Used for the job made at the last byte (as on POST /api/v1/documents).",
        ),
    ] = None,
) -> Response:
    """Create an upload (201, `Location` is its URL); with a body of type application/offset+octet-stream
    (creation-with-upload) its first bytes too. The options in Upload-Metadata are checked now. When the
    last byte arrives the upload becomes a job, as a multipart POST would: see `Pagemill-Job-Id`."""
    _require_tus(tus_resumable)
    length = _non_negative("Upload-Length", upload_length)
    if length is None and upload_defer_length != "1":
        raise MalformedRequest("Send Upload-Length, or Upload-Defer-Length: 1.", header="Upload-Length")
    if length is not None and upload_defer_length is not None:
        raise MalformedRequest("Send Upload-Length or Upload-Defer-Length, not both.")
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if has_body and (content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise UnsupportedMediaType()
    checksum = patching.parse_checksum(upload_checksum) if has_body else None
    info = await run_in_threadpool(
        service.create_upload,
        sessions,
        store,
        settings,
        principal=principal,
        length=length,
        metadata=upload_metadata,
        idempotency_key=idempotency_key,
    )
    location = f"/api/v1/uploads/{info.id}"
    if not has_body:
        headers = {**_upload_headers(info), "Location": location}
        return Response(status_code=201, headers=headers)
    patch = await run_in_threadpool(
        patching.begin_patch,
        sessions,
        store,
        settings,
        principal=principal,
        actor=actor,
        upload_id=info.id,
        offset=0,
        length=None,
        checksum=checksum,
        expected=_declared(request),
    )
    result = await _receive(request, patch, background)
    return _result_response(request, result, 201, location=location)


@router.head(
    "/uploads/{upload_id}",
    status_code=status.HTTP_200_OK,
    response_class=Response,
    responses=_COMMON,
    summary="Offset of a tus upload",
)
@rate_limited
async def head_upload(
    request: Request,
    upload_id: str,
    sessions: SessionScopeDep,
    principal: CurrentPrincipal,
    tus_resumable: Annotated[str | None, _TUS_RESUMABLE] = None,
) -> Response:
    """How many bytes the server has (`Upload-Offset`): resume from there. `Upload-Length` (or
    `Upload-Defer-Length: 1`), `Upload-Expires`, and `Pagemill-Job-Id` once it is a job."""
    _require_tus(tus_resumable)
    info = await run_in_threadpool(service.get_upload, sessions, principal, upload_id)
    headers = _upload_headers(info)
    if info.state == "submitted":
        headers["Pagemill-Job-Id"] = info.job_id
    return Response(status_code=200, headers=headers)


@router.patch(
    "/uploads/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_COMMON, **_BODY_ERRORS},
    summary="Send bytes of a tus upload",
)
@rate_limited
async def patch_upload(
    request: Request,
    upload_id: str,
    sessions: SessionScopeDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    actor: ActorDep,
    background: BackgroundTasks,
    tus_resumable: Annotated[str | None, _TUS_RESUMABLE] = None,
    content_type: Annotated[
        str | None, Header(alias="Content-Type", description="application/offset+octet-stream")
    ] = None,
    upload_offset: Annotated[
        str | None, Header(alias="Upload-Offset", description="Where these bytes go: HEAD's offset.")
    ] = None,
    upload_length: Annotated[
        str | None, Header(alias="Upload-Length", description="A deferred length, once.")
    ] = None,
    upload_checksum: Annotated[
        str | None,
        Header(alias="Upload-Checksum", description="`sha1 <base64>` or `sha256 <base64>` of this body."),
    ] = None,
) -> Response:
    """Append the body at `Upload-Offset` (204 with the new `Upload-Offset`). A dropped connection keeps
    the bytes that arrived (unless `Upload-Checksum` was sent): ask HEAD and go on from there. The last
    byte makes the job: `Pagemill-Job-Id` and `Location` of the job (a job refused then, e.g. over quota,
    answers that error; the upload stays complete for POST /api/v1/documents with its `upload_id`)."""
    _require_tus(tus_resumable)
    if (content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise UnsupportedMediaType(sent=content_type)
    offset = _non_negative("Upload-Offset", upload_offset)
    if offset is None:
        raise MalformedRequest("Upload-Offset is required.", header="Upload-Offset")
    checksum = patching.parse_checksum(upload_checksum)
    patch = await run_in_threadpool(
        patching.begin_patch,
        sessions,
        store,
        settings,
        principal=principal,
        actor=actor,
        upload_id=upload_id,
        offset=offset,
        length=_non_negative("Upload-Length", upload_length),
        checksum=checksum,
        expected=_declared(request),
    )
    result = await _receive(request, patch, background)
    return _result_response(request, result, 204, location=None)


@router.delete(
    "/uploads/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **_COMMON,
        409: _error("UPLOAD_ALREADY_USED: the upload is a job; delete the job instead."),
        423: _error("UPLOAD_LOCKED: a PATCH is writing it; retry after Retry-After."),
    },
    summary="Delete a tus upload",
)
@rate_limited
async def delete_upload(
    request: Request,
    upload_id: str,
    sessions: SessionScopeDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    tus_resumable: Annotated[str | None, _TUS_RESUMABLE] = None,
) -> Response:
    """Delete an unfinished (or finished, not yet submitted) upload: its bytes are removed and its S3
    multipart upload aborted; 404 from then on (tus termination)."""
    _require_tus(tus_resumable)
    await run_in_threadpool(
        service.terminate_upload, sessions, store, settings, principal=principal, upload_id=upload_id
    )
    return Response(status_code=204)
