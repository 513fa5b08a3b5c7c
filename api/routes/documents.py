"""Submitting documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Header, Request, Response, UploadFile, status

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal
from api.deps import SessionScopeDep, SettingsDep, StoreDep
from api.errors import ErrorResponse
from api.rate_limits import rate_limited
from pagemill.engines.registry import ENGINE_NAMES
from pagemill.jobs import reading, service
from pagemill.jobs.options import JobOptions, OcrMode, OutputFormat, validate_page_range
from pagemill.jobs.schemas import JobOut

router = APIRouter(prefix="/api/v1", tags=["documents"], responses=AUTH_ERRORS)

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "model": ErrorResponse,
        "description": "BAD_REQUEST: the multipart body cannot be parsed, or ends before its closing "
        "boundary (an upload cut off).",
    },
    413: {
        "model": ErrorResponse,
        "description": "FILE_TOO_LARGE: the body is over the upload limit or the tier's file size.",
    },
    415: {
        "model": ErrorResponse,
        "description": "UNSUPPORTED_TYPE: the content is not PDF/PNG/JPEG/TIFF/WebP.",
    },
    409: {
        "model": ErrorResponse,
        "description": "CONFLICT: a request with the same Idempotency-Key is in progress; retry.",
    },
    422: {
        "model": ErrorResponse,
        "description": "EMPTY_FILE, VALIDATION_ERROR (a field is invalid), IDEMPOTENCY_KEY_REUSED, "
        "ENGINE_NOT_CONFIGURED (the engine, or the default chain, names a model server this deployment has "
        "not set; the message names the setting) or SECRETS_NOT_CONFIGURED (a password, but no secrets.key "
        "to keep it sealed).",
    },
    429: {
        "model": ErrorResponse,
        "description": "RATE_LIMITED (requests) or QUOTA_EXCEEDED (documents per day or month); see "
        "Retry-After.",
    },
    503: {
        "model": ErrorResponse,
        "description": "SERVICE_UNAVAILABLE: storage or database down, or the server is busy; retry after "
        "Retry-After.",
    },
}


@router.post(
    "/documents",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=_ERRORS,
    summary="Submit a document",
)
@rate_limited
def submit_document(
    request: Request,
    sessions: SessionScopeDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    actor: ActorDep,
    response: Response,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="The document: PDF, PNG, JPEG, TIFF or WebP.")],
    formats: Annotated[
        str, Form(description="Comma-separated result formats: markdown, text, json.")
    ] = "markdown,text,json",
    page_range: Annotated[
        str | None, Form(description="1-based pages, e.g. '1-3,5,9-'. Default: all.")
    ] = None,
    ocr_mode: Annotated[
        OcrMode,
        Form(description="auto: text layer where usable, else OCR; text_layer: never OCR; ocr: always."),
    ] = OcrMode.AUTO,
    engine: Annotated[
        str | None,
        Form(description="OCR engine: tesseract, rapidocr, vllm or remote-openai. Default: engines.default."),
    ] = None,
    password: Annotated[str | None, Form(description="Password of an encrypted PDF.")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Makes retries safe: a second request with the same key and the same document and "
            "options returns the first job (header `Idempotent-Replayed: true`) instead of making another.",
        ),
    ] = None,
) -> JobOut:
    """Accept a document and answer at once with its job (202); poll `GET /api/v1/jobs/{id}`.

    The type is detected from the content, never from the file name or Content-Type. The tenant's tier
    caps the file size and page count; the document counts against its daily or monthly quota.
    """
    from pagemill.errors import ValidationFailed

    try:
        wanted = [OutputFormat(part.strip()) for part in formats.split(",") if part.strip()]
    except ValueError as exc:
        raise ValidationFailed(
            "formats must be a comma-separated list of markdown, text, json.", field="formats"
        ) from exc
    if not wanted:
        raise ValidationFailed("formats must name at least one format.", field="formats")
    if engine is not None and engine not in ENGINE_NAMES:
        raise ValidationFailed(
            f"engine must be one of {', '.join(ENGINE_NAMES)}.", field="engine", value=engine
        )
    options = JobOptions(
        formats=list(dict.fromkeys(wanted)),
        page_range=validate_page_range(page_range),
        ocr_mode=ocr_mode,
        engine=engine,
    )
    reading.require_engines_configured(options, settings)
    job, replayed = service.submit_document(
        sessions,
        store,
        settings,
        principal=principal,
        actor=actor,
        fileobj=file.file,
        filename=file.filename,
        options=options,
        password=password,
        idempotency_key=idempotency_key,
        # The broker publish waits until the 202 is sent: the answer does not depend on it.
        after_response=background.add_task,
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.from_job(job)
