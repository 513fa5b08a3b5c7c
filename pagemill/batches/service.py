"""The batch service: submit many documents with one set of options, read, list and cancel batches.
Never commits.

What refuses the whole batch (nothing is stored, nothing counted): invalid options, no item, more items
than the tier's ``max_batch_items``, a password this server cannot seal, too few documents left in the
tier's quota for every item (checked before anything is stored; a quota taken meanwhile by a concurrent
request rolls the whole batch back), a body over the upload limit (answered before it is read), a
dependency down, and a batch none of whose items is accepted. What refuses one item (listed with its error,
the others go on): a file's own content (EMPTY_FILE, UNSUPPORTED_TYPE, FILE_TOO_LARGE), a URL the egress
guard refuses without fetching it (URL_FORBIDDEN), an upload id that is not this tenant's finished, unused
upload (NOT_FOUND, UPLOAD_INCOMPLETE, UPLOAD_EXPIRED, UPLOAD_ALREADY_USED). An item accepted here whose
document turns out hostile, broken or unreachable fails as its own job (CORRUPT_FILE, TOO_MANY_PAGES,
URL_UNREACHABLE, ...), never the others.

Files become jobs in the batch's own transaction. URL and upload items are then submitted one by one
through their own services (pagemill.jobs.url_submission, pagemill.uploads.service), each in its own
transaction, and linked to the batch; the quota is checked for every item beforehand, but a quota taken by
a concurrent request in between refuses only the items that no longer fit.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from sqlalchemy.orm import Session

from pagemill.batches import repository as repo
from pagemill.batches.schemas import BatchOut
from pagemill.db import SessionScope
from pagemill.documents.kinds import DocumentKind
from pagemill.egress.guard import EgressPolicy, check_submission
from pagemill.errors import BatchTooLarge, InputError, NotFound, PagemillError, ValidationFailed
from pagemill.events import service as events
from pagemill.jobs import cache, submission, url_submission
from pagemill.jobs import repository as jobs_repo
from pagemill.jobs import service as jobs
from pagemill.jobs.options import JobOptions
from pagemill.models import Batch, BatchItem, Job, JobState
from pagemill.models.base import utcnow
from pagemill.models.batch import ItemKind
from pagemill.pagination import decode_cursor, encode_cursor
from pagemill.settings import Settings
from pagemill.storage import BlobStore
from pagemill.tenancy import audit, usage
from pagemill.tenancy.principal import Actor, Principal
from pagemill.uploads import service as uploads

log = logging.getLogger(__name__)


@dataclass
class FileUpload:
    """One file of a batch as received."""

    filename: str | None
    fileobj: IO[bytes]


@dataclass
class _Accepted:
    """A file that passed its checks, on its way to becoming a job."""

    position: int
    filename: str | None
    fileobj: IO[bytes]
    kind: DocumentKind
    digest: str
    size: int
    job_id: str
    source: cache.CacheSource | None = None


def _store_original(store: BlobStore, doc: _Accepted) -> None:
    doc.fileobj.seek(0)
    store.put_file(jobs.source_key(doc.job_id), doc.fileobj, content_type=doc.kind.media_type)


def submit_batch(
    sessions: SessionScope,
    store: BlobStore,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    files: Sequence[FileUpload],
    options: JobOptions,
    password: str | None,
    urls: Sequence[str] = (),
    upload_ids: Sequence[str] = (),
    use_cache: bool = True,
    after_response: submission.AfterResponse | None = None,
    callback_url: str | None = None,
) -> BatchOut:
    """Check every item, store the accepted files and record the batch with one job per accepted file in one
    transaction, then submit its URL and upload items (see the module docstring for what refuses the batch
    and what one item); the batch.

    As for one document, no database connection is held while files are hashed or stored, and with
    ``after_response`` the ingest tasks are published after the 202 has gone out. Every job of the batch
    gets ``callback_url`` (checked by the caller).
    """
    tier = settings.tiers.get(principal.tier)
    now = utcnow()
    count = len(files) + len(urls) + len(upload_ids)
    if count == 0:
        raise ValidationFailed("A batch needs at least one item (files, urls or upload_ids).", field="files")
    if count > tier.max_batch_items:
        raise BatchTooLarge(
            f"The batch has {count} items; the {principal.tier} tier allows {tier.max_batch_items}.",
            items=count,
            max_batch_items=tier.max_batch_items,
        )
    sealed_password = submission.seal_password(password, settings)
    with sessions() as session:
        usage.check_documents_available(session, principal.tenant_id, principal.tier, tier, now, count)

    batch_id = str(uuid.uuid4())
    items: list[BatchItem] = []
    accepted: list[_Accepted] = []
    for position, upload in enumerate(files):
        name = submission.sanitize_filename(upload.filename)
        item = BatchItem(batch_id=batch_id, position=position, kind=ItemKind.FILE, source=name)
        items.append(item)
        try:
            kind, digest, size = submission.inspect_upload(upload.fileobj, settings, principal.tier, options)
        except InputError as exc:
            item.error_code, item.error_message, item.error_details = error_fields(exc)
            continue
        job_id = str(uuid.uuid4())
        item.job_id = job_id
        accepted.append(_Accepted(position, upload.filename, upload.fileobj, kind, digest, size, job_id))
    # Checked now, without fetching: a URL the guard refuses refuses its item before anything is stored.
    policy = EgressPolicy.from_settings(settings.egress)
    later: list[BatchItem] = []
    for url in urls:
        item = BatchItem(batch_id=batch_id, position=len(items), kind=ItemKind.URL, source=url)
        items.append(item)
        try:
            check_submission(url, policy)
        except InputError as exc:
            item.error_code, item.error_message, item.error_details = error_fields(exc)
            continue
        later.append(item)
    for upload_id in upload_ids:
        item = BatchItem(batch_id=batch_id, position=len(items), kind=ItemKind.UPLOAD, source=upload_id)
        items.append(item)
        later.append(item)
    if not accepted and not later:
        raise ValidationFailed(
            "No item of the batch was accepted.",
            field="files",
            items=[{"position": i.position, "code": i.error_code, "message": i.error_message} for i in items],
        )

    max_pages = min(settings.limits.max_pages, tier.max_pages)
    if use_cache:
        with sessions() as session:
            for doc in accepted:
                doc.source = cache.find_source(
                    session,
                    settings,
                    tenant_id=principal.tenant_id,
                    sha256=doc.digest,
                    options=options,
                    max_pages=max_pages,
                    now=now,
                )
    originals = {doc.job_id: functools.partial(_store_original, store, doc) for doc in accepted}
    try:
        for doc in accepted:
            doc.source = submission.store_unless_cached(doc.source, originals[doc.job_id])
        with sessions() as session:
            batch = Batch(
                id=batch_id,
                tenant_id=principal.tenant_id,
                options=options.model_dump(mode="json"),
                items_total=count,
                items_refused=count - len(accepted) - len(later),
                created_at=now,
            )
            repo.add_batch(session, batch, items)
            made: list[Job] = []
            for doc in accepted:
                made.append(
                    submission.record_job(
                        session,
                        settings,
                        job_id=doc.job_id,
                        principal=principal,
                        actor=actor,
                        now=now,
                        filename=doc.filename,
                        kind=doc.kind,
                        size=doc.size,
                        digest=doc.digest,
                        options=options,
                        sealed_password=sealed_password,
                        idempotency_key=None,
                        publish_after_commit=after_response is None and doc.source is None,
                        batch_id=batch_id,
                        cached_from=doc.source,
                        callback_url=callback_url,
                    )
                )
            audit.record(
                session,
                actor,
                audit.BATCH_CREATED,
                target=batch_id,
                tenant_id=principal.tenant_id,
                details={"items": count, "files": len(made), "refused": count - len(accepted) - len(later)},
            )
        for doc, job in zip(accepted, made, strict=True):
            submission.read_afresh_if_not_adopted(
                job, doc.source, originals[job.id], tier.priority, publish=after_response is None
            )
    except BaseException:
        # Not recorded (a quota taken meanwhile, the database, the store): no orphan blobs.
        for doc in accepted:
            store.delete_prefix(f"jobs/{doc.job_id}/")
        raise
    if after_response is not None:
        for job in made:
            if job.cached_from is None:
                after_response(submission.publish_ingest, job.id, tier.priority)
    if later:
        _submit_later(
            sessions,
            store,
            settings,
            later,
            principal=principal,
            actor=actor,
            options=options,
            password=password,
            after_response=after_response,
            callback_url=callback_url,
        )
    with sessions() as session:
        return get_batch(session, principal.tenant_id, batch_id)


def error_fields(exc: PagemillError) -> repo.ItemError:
    """An item's error as stored: code, message and details made JSON-safe (they go into a JSON column)."""
    return exc.code, exc.message, json.loads(json.dumps(exc.details, default=str))


def _submit_later(
    sessions: SessionScope,
    store: BlobStore,
    settings: Settings,
    items: list[BatchItem],
    *,
    principal: Principal,
    actor: Actor,
    options: JobOptions,
    password: str | None,
    after_response: submission.AfterResponse | None,
    callback_url: str | None = None,
) -> None:
    """Submit a recorded batch's URL and upload items through their own services, one transaction each,
    then record on each item its job (linked to the batch) or its error."""
    outcome: dict[int, tuple[str | None, repo.ItemError | None]] = {}
    for item in items:
        try:
            if item.kind == ItemKind.URL:
                job, _ = url_submission.submit_url(
                    sessions,
                    settings,
                    principal=principal,
                    actor=actor,
                    url=item.source,
                    options=options,
                    password=password,
                    after_response=after_response,
                    callback_url=callback_url,
                )
            else:
                job, _ = uploads.submit_upload(
                    sessions,
                    store,
                    settings,
                    principal=principal,
                    actor=actor,
                    upload_id=item.source,
                    options=options,
                    password=password,
                    after_response=after_response,
                    callback_url=callback_url,
                )
        except PagemillError as exc:  # this item's refusal (or failure): the others go on
            outcome[item.position] = (None, error_fields(exc))
        else:
            outcome[item.position] = (job.id, None)
    with sessions() as session:
        repo.record_outcomes(session, items[0].batch_id, outcome)


def get_batch(session: Session, tenant_id: str, batch_id: str) -> BatchOut:
    """A tenant's batch with its items and counts; NotFound if there is none, or it is another tenant's."""
    batch = _tenant_batch(session, tenant_id, batch_id)
    return BatchOut.from_rows(batch, repo.items_with_jobs(session, batch.id))


def _tenant_batch(session: Session, tenant_id: str, batch_id: str) -> Batch:
    canonical = _canonical_uuid(batch_id)
    batch = repo.get_tenant_batch(session, tenant_id, canonical) if canonical else None
    if batch is None:
        raise NotFound("No batch with this id.", batch_id=batch_id)
    return batch


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def cancel_batch(session: Session, tenant_id: str, batch_id: str, *, actor: Actor) -> BatchOut:
    """Ask every unfinished job of the batch to stop (as cancelling each would); finished ones are kept."""
    batch = _tenant_batch(session, tenant_id, batch_id)
    active = repo.active_job_ids(session, batch.id)
    for job_id in active:
        if jobs_repo.request_cancel(session, job_id):
            events.job_ended(session, job_id, JobState.CANCELLED)
    audit.record(
        session,
        actor,
        audit.BATCH_CANCELLED,
        target=batch.id,
        tenant_id=tenant_id,
        details={"jobs_cancelled": len(active)},
    )
    session.flush()
    session.expire_all()  # the jobs' states were changed by UPDATE statements
    return BatchOut.from_rows(batch, repo.items_with_jobs(session, batch.id))


def list_batches(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Batch], str | None]:
    """A page of a tenant's batches, newest first, and the cursor of the next page."""
    after = decode_cursor(cursor) if cursor else None
    batches = list(repo.list_batches(session, tenant_id=tenant_id, limit=limit + 1, after=after))
    next_cursor = encode_cursor(batches[limit - 1]) if len(batches) > limit else None
    return batches[:limit], next_cursor
