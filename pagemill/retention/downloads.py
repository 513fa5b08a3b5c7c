"""Result downloads by URL (``?redirect=true``): where to send the client, and the signed route's read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

from sqlalchemy.orm import Session

from pagemill.errors import NotFound
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs import service as jobs
from pagemill.jobs.options import OutputFormat
from pagemill.retention import links
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor

_EXTENSIONS = {
    OutputFormat.MARKDOWN: "md",
    OutputFormat.TEXT: "txt",
    OutputFormat.JSON: "json",
    OutputFormat.SRT: "srt",
    OutputFormat.VTT: "vtt",
}


def download_name(filename: str | None, fmt: OutputFormat) -> str:
    """The file name a downloaded result is saved as: the document's name with the format's extension."""
    # ASCII only: it goes into a Content-Disposition header (latin-1) as it is.
    stem = PurePosixPath(filename or "").stem.encode("ascii", "replace").decode().replace("?", "_")
    return f"{stem or 'document'}.{_EXTENSIONS[fmt]}"


def result_url(
    session: Session,
    store: BlobStore,
    settings: Settings,
    tenant_id: str,
    job_id: str,
    fmt: OutputFormat,
    *,
    actor: Actor,
) -> str:
    """Where a tenant's result in ``fmt`` can be downloaded without credentials for a short while
    (``storage.result_url_ttl_s``): a presigned S3 URL, else a signed API path. Audited as a result read."""
    job = jobs.readable_result(session, tenant_id, job_id, fmt)
    audit.record(
        session,
        actor,
        audit.RESULT_READ,
        target=job.id,
        tenant_id=tenant_id,
        details={"format": fmt.value, "redirect": True},
    )
    url = store.download_url(
        jobs.stored_result_key(job, fmt),
        settings.storage.result_url_ttl_s,
        media_type=jobs.RESULT_MEDIA_TYPES[fmt],
        filename=download_name(job.filename, fmt),
    )
    return url if url is not None else links.signed_path(settings, job.id, fmt)


def open_linked_result(
    session: Session,
    store: BlobStore,
    settings: Settings,
    job_id: str,
    fmt: OutputFormat,
    *,
    expires: int,
    signature: str,
) -> tuple[Iterator[bytes], str, str]:
    """The result a signed link names, once its signature and expiry are checked: its bytes, media type and
    download name. ResultExpired if the job's results were deleted since the link was made."""
    links.verify(settings, job_id, fmt, expires, signature)
    job = jobs_repo.get_job(session, job_id)
    if job is None:
        raise NotFound("No job with this id.", job_id=job_id)
    jobs.readable_result(session, job.tenant_id, job.id, fmt)
    chunks = store.iter_chunks(jobs.stored_result_key(job, fmt))
    return chunks, jobs.RESULT_MEDIA_TYPES[fmt], download_name(job.filename, fmt)
