"""Batches: many documents in one submission, followed and cancelled as one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Path, Query, Request, Response, UploadFile, status

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal
from api.deps import ReadScopeDep, SessionDep, SessionScopeDep, SettingsDep, StoreDep
from api.errors import ErrorResponse
from api.form_fields import (
    DEFAULT_FORMATS,
    AudioFields,
    CallbackUrlField,
    EngineField,
    FormatsField,
    OcrModeField,
    OfficeFields,
    PageRangeField,
)
from api.rate_limits import rate_limited
from pagemill.batches import service
from pagemill.batches.schemas import BatchList, BatchOut, BatchSummary
from pagemill.jobs import reading
from pagemill.jobs.options import AudioOptions, JobOptions, OcrMode, OfficeOptions, form_options
from pagemill.settings import Settings
from pagemill.webhooks.service import checked_callback_url

router = APIRouter(prefix="/api/v1/batches", tags=["batches"], responses=AUTH_ERRORS)

INT32_MAX = 2**31 - 1
BatchId = Annotated[str, Path(description="The batch's id, as returned on submission.")]
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "NOT_FOUND: no such batch (or another tenant's)."}
}
_UNAVAILABLE: dict[int | str, dict[str, object]] = {
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_ERROR: a parameter is invalid (details name it).",
    },
    503: {"model": ErrorResponse, "description": "SERVICE_UNAVAILABLE: a dependency is down; retry."},
}
_SUBMIT_ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "model": ErrorResponse,
        "description": "BAD_REQUEST: the multipart body cannot be parsed, or is cut off.",
    },
    413: {
        "model": ErrorResponse,
        "description": "FILE_TOO_LARGE: the whole body is over limits.max_upload_bytes (a file over the "
        "tier's file size refuses only that item).",
    },
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_ERROR (an option is invalid, no item, or none accepted: details.items), "
        "BATCH_TOO_LARGE (more items than the tier's max_batch_items), ENGINE_NOT_CONFIGURED or "
        "SECRETS_NOT_CONFIGURED. The whole batch is refused; nothing is stored or counted.",
    },
    429: {
        "model": ErrorResponse,
        "description": "RATE_LIMITED, or QUOTA_EXCEEDED: fewer documents left in the quota than items "
        "(details.remaining, details.requested); the whole batch is refused.",
    },
    503: {"model": ErrorResponse, "description": "SERVICE_UNAVAILABLE: storage or database down; retry."},
}


def job_options(
    settings: Settings,
    formats: str,
    page_range: str | None,
    ocr_mode: OcrMode,
    engine: str | None,
    office: OfficeOptions,
    audio: AudioOptions,
) -> JobOptions:
    """The job options of the form fields, checked as POST /api/v1/documents checks them."""
    options = form_options(formats, page_range, ocr_mode, engine, office, audio)
    reading.require_engines_configured(options, settings)
    return options


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchOut,
    responses=_SUBMIT_ERRORS,
    summary="Submit a batch of documents",
)
@rate_limited
def submit_batch(
    request: Request,
    sessions: SessionScopeDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    actor: ActorDep,
    response: Response,
    background: BackgroundTasks,
    office: OfficeFields,
    audio: AudioFields,
    files: Annotated[
        list[UploadFile] | None,
        File(
            description="The documents, one part each (repeat the field): any type POST /api/v1/documents "
            "takes."
        ),
    ] = None,
    urls: Annotated[
        list[str] | None,
        Form(description="Documents the workers fetch, one http(s) URL per field (repeat the field)."),
    ] = None,
    upload_ids: Annotated[
        list[str] | None,
        Form(
            description="Finished tus uploads (`/api/v1/uploads`, sent with `submit false`) of this tenant, "
            "one id per field (repeat the field)."
        ),
    ] = None,
    formats: FormatsField = DEFAULT_FORMATS,
    page_range: PageRangeField = None,
    ocr_mode: OcrModeField = OcrMode.AUTO,
    engine: EngineField = None,
    password: Annotated[
        str | None, Form(description="Password of the batch's encrypted PDFs and office files.")
    ] = None,
    cache: Annotated[
        bool,
        Form(description="false: read every document afresh, even one whose results the cache holds."),
    ] = True,
    callback_url: CallbackUrlField = None,
) -> BatchOut:
    """Accept many documents (files, URLs, finished uploads) with one set of options and answer at once
    (202) with the batch: one job per accepted item, and each refused item with its error. Poll
    `GET /api/v1/batches/{id}`.

    Each item is checked as `POST /api/v1/documents` checks a document (a file's type from its content and
    the tier's file size, a URL's form, an upload's owner and state) and counts against the quota. An item
    refused for itself does not refuse the others; the whole batch is refused when its options are invalid,
    it has more items than the tier allows, the quota cannot take every item, or no item is accepted.
    """
    options = job_options(settings, formats, page_range, ocr_mode, engine, office, audio)
    callback_url = checked_callback_url(sessions, settings, principal.tenant_id, callback_url)
    uploads = [service.FileUpload(upload.filename, upload.file) for upload in files or []]
    batch = service.submit_batch(
        sessions,
        store,
        settings,
        principal=principal,
        actor=actor,
        files=uploads,
        urls=urls or [],
        upload_ids=upload_ids or [],
        options=options,
        password=password,
        use_cache=cache,
        after_response=background.add_task,
        callback_url=callback_url,
    )
    response.headers["Location"] = f"/api/v1/batches/{batch.id}"
    return batch


@router.get("", response_model=BatchList, responses=_UNAVAILABLE)
@rate_limited
def list_batches(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, le=INT32_MAX, description="Batches per page (capped by api.page_size_max).")
    ] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> BatchList:
    """List the tenant's batches, newest first, with cursor pagination."""
    with sessions() as session:
        batches, next_cursor = service.list_batches(
            session, principal.tenant_id, limit=min(limit, settings.api.page_size_max), cursor=cursor
        )
        return BatchList(items=[BatchSummary.from_batch(b) for b in batches], next_cursor=next_cursor)


@router.get("/{batch_id}", response_model=BatchOut, responses={**_NOT_FOUND, **_UNAVAILABLE})
@rate_limited
def get_batch(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    batch_id: BatchId,
) -> BatchOut:
    """A batch: items per state, pages done of total, and every item with its job, state and error."""
    with sessions() as session:
        return service.get_batch(session, principal.tenant_id, batch_id)


@router.delete(
    "/{batch_id}",
    response_model=BatchOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NOT_FOUND, **_UNAVAILABLE},
)
@rate_limited
def cancel_batch(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    batch_id: BatchId,
) -> BatchOut:
    """Cancel every unfinished job of the batch (each stops at its next page boundary); finished jobs are
    kept. Cancelling a finished batch is a no-op."""
    return service.cancel_batch(session, principal.tenant_id, batch_id, actor=actor)
