"""Submitting documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    File,
    Form,
    Header,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.exceptions import RequestValidationError

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal
from api.deps import SessionScopeDep, SettingsDep, StoreDep
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
from api.json_body import JSON_REQUEST_BODY, MISSING_DOCUMENT, UrlSubmission, url_submission_body
from api.rate_limits import rate_limited
from pagemill.jobs import reading, submission, url_submission
from pagemill.jobs.options import OcrMode, form_options
from pagemill.jobs.schemas import JobOut
from pagemill.models import Job
from pagemill.uploads import service as upload_service
from pagemill.webhooks.service import checked_callback_url

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
        "description": "CONFLICT: a request with the same Idempotency-Key is in progress; retry. "
        "UPLOAD_INCOMPLETE: the upload_id's bytes are not all in. UPLOAD_ALREADY_USED: the upload is "
        "another job already, made with other options (the same options answer that job again).",
    },
    404: {"model": ErrorResponse, "description": "NOT_FOUND: no upload with this upload_id for the tenant."},
    410: {
        "model": ErrorResponse,
        "description": "UPLOAD_EXPIRED: the upload_id passed uploads.expire_after_s.",
    },
    422: {
        "model": ErrorResponse,
        "description": "EMPTY_FILE, VALIDATION_ERROR (a field is invalid), IDEMPOTENCY_KEY_REUSED, "
        "ENGINE_NOT_CONFIGURED (the engine, or the default chain, names a model server this deployment has "
        "not set; the message names the setting), SECRETS_NOT_CONFIGURED (a password, but no secrets.key "
        "to keep it sealed) or URL_FORBIDDEN (url: not http(s), has userinfo, or its host is a literal "
        "address or localhost name the SSRF guard refuses; details.reason says which).",
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
    openapi_extra=JSON_REQUEST_BODY,
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
    json_body: Annotated[UrlSubmission | None, Depends(url_submission_body)],
    office: OfficeFields,
    audio: AudioFields,
    file: Annotated[
        UploadFile | None,
        File(
            description="The document: PDF, PNG, JPEG, TIFF, WebP, DOCX, PPTX, XLSX, ODT, ODP, ODS, HTML, "
            "EPUB, EML (and DOC, XLS, PPT, RTF where LibreOffice is installed); or a recording: WAV, MP3, "
            "AAC, M4A, OGG/Opus, FLAC, WebM, MKV, or the audio of an MP4 video."
        ),
    ] = None,
    upload_id: Annotated[
        str | None,
        Form(
            description="Instead of file: the id of a finished tus upload (`/api/v1/uploads`) of this tenant."
        ),
    ] = None,
    url: Annotated[
        str | None,
        Form(description="Instead of file: an http(s) URL the worker fetches the document from."),
    ] = None,
    formats: FormatsField = DEFAULT_FORMATS,
    page_range: PageRangeField = None,
    ocr_mode: OcrModeField = OcrMode.AUTO,
    engine: EngineField = None,
    password: Annotated[
        str | None,
        Form(description="Password of an encrypted PDF or a password-protected DOCX, XLSX or PPTX."),
    ] = None,
    cache: Annotated[
        bool,
        Form(
            description="false: read the document afresh even when the result cache holds the results of "
            "the same document with the same options (see `cached_from`)."
        ),
    ] = True,
    callback_url: CallbackUrlField = None,
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

    Instead of `file`, a `url` (form field, or a JSON body `{"url": ..., "options": {...}}` sent as
    `application/json`) has a worker fetch the document: the API checks only the URL's form and literal
    address, answers 202 at once, and the job fails with URL_FORBIDDEN, URL_UNREACHABLE, URL_HTTP_ERROR,
    URL_TOO_LARGE or URL_TIMEOUT if the fetch does (the quota is counted at submission).
    """
    from pagemill.errors import ValidationFailed

    if json_body is not None:
        # application/json: the URL and the options of the form fields, which are empty then.
        url, password, engine = json_body.url, json_body.options.password, json_body.options.engine
        formats = ",".join(json_body.options.formats)
        page_range, ocr_mode = json_body.options.page_range, json_body.options.ocr_mode
        callback_url = json_body.callback_url
        office, audio = json_body.options.office(), json_body.options.audio()
    options = form_options(formats, page_range, ocr_mode, engine, office, audio)
    reading.require_engines_configured(options, settings)
    callback_url = checked_callback_url(sessions, settings, principal.tenant_id, callback_url)
    given = [name for name, value in (("file", file), ("upload_id", upload_id), ("url", url)) if value]
    if not given:
        # Worded by the one validation handler: how to send a file part (the usual mistake).
        raise RequestValidationError([MISSING_DOCUMENT])
    if len(given) != 1:
        raise ValidationFailed("Send exactly one of file, upload_id and url.", field="file", given=given)
    if upload_id is not None:
        # A finished tus upload (/api/v1/uploads): its bytes are in place already, nothing is copied.
        job, replayed = upload_service.submit_upload(
            sessions,
            store,
            settings,
            principal=principal,
            actor=actor,
            upload_id=upload_id,
            options=options,
            password=password,
            idempotency_key=idempotency_key,
            after_response=background.add_task,
            callback_url=callback_url,
        )
        return _accepted(response, job, replayed)
    if url is not None:
        job, replayed = url_submission.submit_url(
            sessions,
            settings,
            principal=principal,
            actor=actor,
            url=url,
            options=options,
            password=password,
            idempotency_key=idempotency_key,
            after_response=background.add_task,
            callback_url=callback_url,
        )
        return _accepted(response, job, replayed)
    assert file is not None
    job, replayed = submission.submit_document(
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
        use_cache=cache,
        callback_url=callback_url,
    )
    return _accepted(response, job, replayed)


def _accepted(response: Response, job: Job, replayed: bool) -> JobOut:
    """The 202 of a submission: the job, where to poll it, and whether it was replayed."""
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.from_job(job)
