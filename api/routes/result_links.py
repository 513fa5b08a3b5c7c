"""Signed, expiring result downloads (the local backend's answer to `?redirect=true`); no API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from api.deps import ReadScopeDep, SettingsDep, StoreDep
from api.errors import ErrorResponse
from pagemill.jobs.options import OutputFormat
from pagemill.retention import downloads
from pagemill.retention.links import LINK_PATH

router = APIRouter(prefix=LINK_PATH, tags=["jobs"])


@router.get(
    "/{job_id}/{format}",
    responses={
        200: {
            "description": "The result, as `GET /api/v1/jobs/{id}/result` streams it.",
            "content": {"text/markdown": {}, "text/plain": {}, "application/json": {}},
        },
        403: {"model": ErrorResponse, "description": "FORBIDDEN: the signature does not match."},
        404: {"model": ErrorResponse, "description": "NOT_FOUND: no such job."},
        410: {
            "model": ErrorResponse,
            "description": "LINK_EXPIRED: the link is past its expiry; RESULT_EXPIRED: the results were "
            "deleted since.",
        },
        422: {"model": ErrorResponse, "description": "VALIDATION_ERROR: a parameter is missing or invalid."},
    },
    response_class=StreamingResponse,
    summary="Download a result through a signed link",
)
def download_linked_result(
    sessions: ReadScopeDep,
    store: StoreDep,
    settings: SettingsDep,
    job_id: Annotated[str, Path(max_length=64, description="The job's id, as in the link.")],
    format: Annotated[OutputFormat, Path(description="markdown, text or json.")],
    expires: Annotated[int, Query(ge=0, le=2**40, description="Unix time the link expires, as signed.")],
    signature: Annotated[str, Query(max_length=128, description="The link's HMAC-SHA256, hex.")],
) -> StreamingResponse:
    """Serve a result named by a link that `GET /api/v1/jobs/{id}/result?redirect=true` made: no API key,
    the signature and expiry are the authority. Links live `storage.result_url_ttl_s` seconds."""
    with sessions() as session:
        chunks, media_type, name = downloads.open_linked_result(
            session, store, settings, job_id, format, expires=expires, signature=signature
        )
    return StreamingResponse(
        chunks, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
