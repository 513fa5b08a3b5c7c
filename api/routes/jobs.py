"""Reading, listing and cancelling jobs; fetching results and pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse

from api.auth import AUTH_ERRORS, ActorDep, CurrentPrincipal
from api.deps import ReadScopeDep, SessionDep, SessionScopeDep, SettingsDep, StoreDep
from api.errors import ErrorResponse
from api.rate_limits import rate_limited
from pagemill.errors import ValidationFailed
from pagemill.jobs import progress, service
from pagemill.jobs.options import OutputFormat
from pagemill.jobs.schemas import JobList, JobOut, PageList, PageOut, PageProgress
from pagemill.models import JobState
from pagemill.retention import downloads
from pagemill.retention import service as retention

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=AUTH_ERRORS)

JobId = Annotated[
    str, Path(description="The job's id, as returned on submission (any case, with or without hyphens).")
]
# Numbers are stored in 32-bit INTEGER columns: a larger one cannot match anything, and passed on to the
# database it overflows (SQLite raises on integers above 2**63 - 1, Postgres on int4 above 2**31 - 1).
INT32_MAX = 2**31 - 1
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "NOT_FOUND: no such job (or another tenant's)."}
}
_UNAVAILABLE: dict[int | str, dict[str, object]] = {
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_ERROR: a parameter is invalid (details name it).",
    },
    503: {"model": ErrorResponse, "description": "SERVICE_UNAVAILABLE: a dependency is down; retry."},
}


@router.get("", response_model=JobList, responses=_UNAVAILABLE)
@rate_limited
def list_jobs(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=INT32_MAX, description="Jobs per page (capped by api.page_size_max).")
    ] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
    ids: Annotated[
        list[Annotated[str, Query(max_length=64)]] | None,
        Query(
            alias="id",
            description="Only these jobs (repeat it: `?id=…&id=…`, at most api.page_size_max): follow many "
            "jobs in one request. Ids of no job of the tenant are left out.",
        ),
    ] = None,
) -> JobList:
    """List the tenant's jobs, newest first, with cursor pagination; `id` picks the jobs to follow."""
    if ids is not None and len(ids) > settings.api.page_size_max:
        raise ValidationFailed(
            f"At most {settings.api.page_size_max} ids a request.",
            field="id",
            count=len(ids),
            max=settings.api.page_size_max,
        )
    # Read routes open their session here, in the route's thread: a session dependency would close it in a
    # thread hop of its own after the route, and under load each hop waits for a thread and the GIL.
    with sessions() as session:
        jobs, next_cursor = service.list_jobs(
            session,
            principal.tenant_id,
            state=state,
            limit=min(limit, settings.api.page_size_max),
            cursor=cursor,
            ids=ids,
        )
        return JobList(items=[JobOut.from_job(job) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses={**_NOT_FOUND, **_UNAVAILABLE})
@rate_limited
def get_job(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    job_id: JobId,
) -> JobOut:
    """A job's state, page progress, timings and, when it failed, `error: {code, message}`; while it is
    queued or running, `queue_position` and `eta_s` estimate how many pages wait before it and when it
    ends."""
    with sessions() as session:  # in the route's thread, as in list_jobs
        job, estimate = progress.job_status(session, principal.tenant_id, job_id, settings)
        return JobOut.from_job(job, queue_position=estimate.queue_position, eta_s=estimate.eta_s)


@router.delete(
    "/{job_id}",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": JobOut, "description": "With purge=true: the job, its blobs and page text deleted."},
        **_NOT_FOUND,
        409: {
            "model": ErrorResponse,
            "description": "CONFLICT: cancel: the job already succeeded, failed or expired; purge: the job "
            "is still active (cancel it first).",
        },
        **_UNAVAILABLE,
    },
)
@rate_limited
def cancel_job(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    sessions: SessionScopeDep,
    store: StoreDep,
    job_id: JobId,
    purge: Annotated[
        bool,
        Query(
            description="Instead of cancelling: delete a finished job's original, results and page text now "
            "(right to erasure; audited). The job then shows `expired` and `purged`, and its results answer "
            "410 RESULT_EXPIRED. Answered 200."
        ),
    ] = False,
) -> JobOut:
    """Cancel a job: it stops at the next page boundary and ends `cancelled`, keeping finished pages.

    A job no worker has started is cancelled at once. Cancelling a cancelled job is a no-op. With
    `purge=true`, a finished job's data is deleted instead (see the parameter).
    """
    if purge:
        response.status_code = status.HTTP_200_OK
        job = retention.purge_job(sessions, store, principal.tenant_id, job_id, actor=actor)
        return JobOut.from_job(job)
    return JobOut.from_job(service.cancel_job(session, principal.tenant_id, job_id, actor=actor))


@router.get(
    "/{job_id}/result",
    responses={
        200: {
            "description": "The result: markdown, plain text (pages separated by form feeds) or JSON.",
            "content": {"text/markdown": {}, "text/plain": {}, "application/json": {}},
        },
        307: {
            "description": "With redirect=true: `Location` is a short-lived URL of the result that needs no "
            "API key (a presigned S3 URL, or a signed `/api/v1/result-links/...` URL on the local backend)."
        },
        **_NOT_FOUND,
        409: {
            "model": ErrorResponse,
            "description": "CONFLICT: the job has not finished, failed, or was cancelled before any page "
            "was read (details.state).",
        },
        410: {
            "model": ErrorResponse,
            "description": "RESULT_EXPIRED: the results were deleted by retention or a purge.",
        },
        **_UNAVAILABLE,
    },
    response_class=Response,
)
@rate_limited
def get_result(
    request: Request,
    principal: CurrentPrincipal,
    actor: ActorDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    job_id: JobId,
    format: Annotated[
        OutputFormat, Query(description="markdown, text or json; srt or vtt for recordings.")
    ] = OutputFormat.MARKDOWN,
    redirect: Annotated[
        bool,
        Query(
            description="Answer 307 to a short-lived download URL (storage.result_url_ttl_s) instead of "
            "streaming the result through the API."
        ),
    ] = False,
    partial: Annotated[
        bool,
        Query(
            description="Of a job without a result yet (queued, running, failed): the pages finished so far, "
            "assembled now in page order, with `Pagemill-Partial: true` and `Pagemill-Pages-Done`, "
            "`-Failed`, `-Total` headers (JSON also says `partial: true`). A finished job's stored result "
            "is answered as without it, with `Pagemill-Partial: false`. Not with `redirect`."
        ),
    ] = False,
) -> Response:
    """The assembled result of a succeeded (or, partially, a cancelled) job, streamed, or with
    `redirect=true` a redirect to a URL that serves it without an API key for a few minutes; with
    `partial=true`, what is done so far of a job still running."""
    if redirect and not partial:
        url = downloads.result_url(session, store, settings, principal.tenant_id, job_id, format, actor=actor)
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    result = progress.open_result(
        session, store, principal.tenant_id, job_id, format, actor=actor, partial=partial
    )
    return StreamingResponse(result.chunks, media_type=result.media_type, headers=result.headers)


@router.get(
    "/{job_id}/pages",
    response_model=PageList,
    responses={
        **_NOT_FOUND,
        410: {
            "model": ErrorResponse,
            "description": "RESULT_EXPIRED: the job's pages were deleted by retention or a purge.",
        },
        **_UNAVAILABLE,
    },
)
@rate_limited
def list_pages(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    settings: SettingsDep,
    job_id: JobId,
    after: Annotated[
        int,
        Query(ge=0, le=INT32_MAX, description="Only pages numbered above this (the last `next_after`)."),
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=INT32_MAX, description="Pages per call (capped by api.page_size_max).")
    ] = 20,
) -> PageList:
    """Pages as they finish: a job's finished pages (done or failed) numbered above `after`, in page order,
    with their text, markdown and lines; works while the job runs. Poll with `after=next_after` until
    `has_more` is false: the listing stops before the first page still being read, so every page is seen
    once even though pages finish out of order."""
    with sessions() as session:  # in the route's thread, as in list_jobs
        found = progress.finished_pages(
            session,
            principal.tenant_id,
            job_id,
            after=after,
            limit=min(limit, settings.api.page_size_max),
        )
        job = found.job
        return PageList(
            items=[PageOut.from_page(page) for page in found.pages],
            next_after=found.next_after,
            has_more=found.has_more,
            state=job.state,
            pages=PageProgress(total=job.pages_total, done=job.pages_done, failed=job.pages_failed),
        )


@router.get(
    "/{job_id}/pages/{number}",
    response_model=PageOut,
    responses={
        404: {"model": ErrorResponse, "description": "NOT_FOUND: no such job or page."},
        410: {
            "model": ErrorResponse,
            "description": "RESULT_EXPIRED: the job's pages were deleted by retention or a purge.",
        },
        **_UNAVAILABLE,
    },
)
@rate_limited
def get_page(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sessions: ReadScopeDep,
    job_id: JobId,
    number: Annotated[int, Path(ge=1, le=INT32_MAX, description="1-based page number.")],
) -> PageOut:
    """One page: its state, text, markdown, lines with boxes, and the engine and settings that produced it."""
    with sessions() as session:  # in the route's thread, as in list_jobs
        return PageOut.from_page(service.get_page(session, principal.tenant_id, job_id, number))
