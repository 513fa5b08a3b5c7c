"""The upload service on real migrated databases (SQLite and Postgres) with the local blob folder: one lock
per upload (a second PATCH refused, a lapsed one taken over and its old holder fenced off), offsets kept or
discarded, the last byte making exactly one job, and the sweeper removing expired and deleted uploads."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from pagemill.db import session_scope
from pagemill.errors import (
    ChecksumMismatch,
    UploadAlreadyUsed,
    UploadExpired,
    UploadLocked,
    UploadOffsetMismatch,
    UrlForbidden,
    ValidationFailed,
)
from pagemill.jobs.options import JobOptions, OutputFormat
from pagemill.jobs.service import source_key
from pagemill.models import Job, Upload
from pagemill.models.base import utcnow
from pagemill.settings import get_settings
from pagemill.storage import get_blob_store
from pagemill.storage.local import LocalBlobStore
from pagemill.tenancy.principal import Actor, Principal
from pagemill.tenancy.repository import ensure_tenant
from pagemill.uploads import patch as patching
from pagemill.uploads import service
from pagemill.uploads.sweeper import sweep_uploads
from pagemill.webhooks import service as webhooks
from tests.support.documents import make_text_pdf
from tests.support.services import TEST_SECRETS_KEY

pytestmark = pytest.mark.integration

ACTOR = Actor(subject="test")


@pytest.fixture
def principal(database: str) -> Iterator[Principal]:
    """A fresh enterprise tenant of the module's database."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        ensure_tenant(session, tenant, "enterprise")
    yield Principal(tenant_id=tenant, tier="enterprise", subject="key:test", rate_key="test")


def _begin(
    principal: Principal, upload_id: str, offset: int, checksum: tuple[str, bytes] | None = None
) -> patching.Patch:
    return patching.begin_patch(
        session_scope,
        get_blob_store(),
        get_settings(),
        principal=principal,
        actor=ACTOR,
        upload_id=upload_id,
        offset=offset,
        length=None,
        checksum=checksum,
    )


def _create(principal: Principal, length: int, metadata: str | None = None) -> str:
    info = service.create_upload(
        session_scope, get_blob_store(), get_settings(), principal=principal, length=length, metadata=metadata
    )
    return info.id


def test_one_patch_at_a_time_and_a_lapsed_lock_is_fenced(principal: Principal) -> None:
    upload_id = _create(principal, 100)
    first = _begin(principal, upload_id, 0)
    with pytest.raises(UploadLocked):
        _begin(principal, upload_id, 0)
    first.write(b"a" * 10)
    assert first.finish(whole_body=True, after_response=None).upload.offset == 10

    # A holder that stopped renewing (its replica died): its lock lapses, another PATCH takes over, and the
    # old holder's late bytes are refused instead of recorded.
    stale = _begin(principal, upload_id, 10)
    stale.write(b"b" * 5)
    with session_scope() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(locked_until=utcnow()))
    fresh = _begin(principal, upload_id, 10)
    with pytest.raises(UploadLocked):
        stale.finish(whole_body=True, after_response=None)
    fresh.write(b"c" * 5)
    assert fresh.finish(whole_body=True, after_response=None).upload.offset == 15
    assert service.get_upload(session_scope, principal, upload_id).offset == 15
    path = _local().path_for(source_key(_row(upload_id).job_id))
    assert path.read_bytes() == b"a" * 10 + b"c" * 5


def _local() -> LocalBlobStore:
    store = get_blob_store()
    assert isinstance(store, LocalBlobStore)
    return store


def _submit(principal: Principal, upload_id: str, options: JobOptions) -> tuple[Job, bool]:
    return service.submit_upload(
        session_scope,
        get_blob_store(),
        get_settings(),
        principal=principal,
        actor=ACTOR,
        upload_id=upload_id,
        options=options,
        password=None,
    )


def _row(upload_id: str) -> Upload:
    with session_scope() as session:
        upload = session.get(Upload, upload_id)
        assert upload is not None
        session.expunge(upload)
        return upload


def test_wrong_offset_and_checksum_keep_the_offset(principal: Principal) -> None:
    upload_id = _create(principal, 100)
    with pytest.raises(UploadOffsetMismatch):
        _begin(principal, upload_id, 3)
    patch = _begin(principal, upload_id, 0, checksum=("sha1", hashlib.sha1(b"other").digest()))
    patch.write(b"12345")
    with pytest.raises(ChecksumMismatch):
        patch.finish(whole_body=True, after_response=None)
    assert _row(upload_id).upload_offset == 0
    assert _row(upload_id).lock_token is None
    # A body cut off with a checksum cannot be checked: nothing is kept either.
    cut = _begin(principal, upload_id, 0, checksum=("sha1", hashlib.sha1(b"12345").digest()))
    cut.write(b"123")
    assert cut.finish(whole_body=False, after_response=None).upload.offset == 0
    # Without one, what arrived is kept.
    kept = _begin(principal, upload_id, 0)
    kept.write(b"123")
    assert kept.finish(whole_body=False, after_response=None).upload.offset == 3


def test_the_last_byte_makes_one_job_and_the_sweeper_removes_the_rest(
    principal: Principal, tmp_path: Path
) -> None:
    pdf = make_text_pdf(tmp_path / "a.pdf", ["Upload service"]).read_bytes()
    upload_id = _create(principal, len(pdf), "filename YS5wZGY=,submit ZmFsc2U=")  # a.pdf, submit=false
    patch = _begin(principal, upload_id, 0)
    patch.write(pdf)
    result = patch.finish(whole_body=True, after_response=None)
    assert result.job is None and result.upload.state == "completed"
    assert _row(upload_id).sha256 == hashlib.sha256(pdf).hexdigest()
    assert _row(upload_id).head == pdf[:4096]

    options = JobOptions(formats=[OutputFormat.TEXT])
    job, replayed = _submit(principal, upload_id, options)
    assert not replayed
    assert job.sha256 == hashlib.sha256(pdf).hexdigest()
    assert job.filename == "a.pdf"
    again, replayed = _submit(principal, upload_id, options)
    assert (again.id, replayed) == (job.id, True)
    with pytest.raises(UploadAlreadyUsed):
        _submit(principal, upload_id, JobOptions())

    # Expired: the job's upload row goes, its original (now the job's) stays; an unfinished one goes whole.
    other = _create(principal, 50)
    unfinished = _begin(principal, other, 0)
    unfinished.write(b"x" * 20)
    unfinished.finish(whole_body=True, after_response=None)
    other_path = _local().path_for(source_key(_row(other).job_id))
    assert other_path.exists()
    with session_scope() as session:
        session.execute(update(Upload).where(Upload.id.in_([upload_id, other])).values(expires_at=utcnow()))
    # Past its expiry and not swept yet: a PATCH and a HEAD are told it expired (410), not that it is unknown.
    with pytest.raises(UploadExpired):
        _begin(principal, other, 20)
    with pytest.raises(UploadExpired):
        service.get_upload(session_scope, principal, other)
    assert sweep_uploads(get_settings(), get_blob_store()) >= 2
    with session_scope() as session:
        assert session.get(Upload, upload_id) is None
        assert session.get(Upload, other) is None
        assert session.get(Job, job.id) is not None
    assert get_blob_store().path_for(source_key(job.id)).exists()  # type: ignore[attr-defined]
    assert not other_path.exists()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_callback_url_in_the_metadata_is_checked_at_creation_and_given_to_the_job(
    principal: Principal, tmp_path: Path
) -> None:
    callback = "https://hooks.example.com/pagemill"
    # No callback secret yet: refused at creation, before any byte (as the form field is at POST).
    with pytest.raises(ValidationFailed, match="callback secret"):
        _create(principal, 10, f"callback_url {_b64(callback)}")
    settings = get_settings()
    keyed = settings.model_copy(
        update={"secrets": settings.secrets.model_copy(update={"key": SecretStr(TEST_SECRETS_KEY)})}
    )
    with session_scope() as session:
        webhooks.renew_callback_secret(session, keyed, tenant_id=principal.tenant_id, actor=ACTOR)
    with pytest.raises(UrlForbidden):  # the SSRF guard
        _create(principal, 10, f"callback_url {_b64('http://127.0.0.1:8080/hook')}")

    pdf = make_text_pdf(tmp_path / "a.pdf", ["Callback by tus"]).read_bytes()
    upload_id = _create(principal, len(pdf), f"filename {_b64('a.pdf')},callback_url {_b64(callback)}")
    patch = _begin(principal, upload_id, 0)
    patch.write(pdf)
    result = patch.finish(whole_body=True, after_response=None)
    assert result.job is not None and result.job.callback_url == callback

    # submit=false, then POST with the upload id: the upload's callback_url unless the POST names another.
    later = _create(principal, len(pdf), f"submit {_b64('false')},callback_url {_b64(callback)}")
    patch = _begin(principal, later, 0)
    patch.write(pdf)
    patch.finish(whole_body=True, after_response=None)
    job, _ = _submit(principal, later, JobOptions())
    assert job.callback_url == callback
