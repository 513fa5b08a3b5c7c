"""Submitting a document by URL (the API side): check the URL without fetching it, record the job."""

from __future__ import annotations

import uuid

from pagemill.db import SessionScope
from pagemill.egress.guard import EgressPolicy, check_submission
from pagemill.jobs import repository as repo
from pagemill.jobs.options import JobOptions
from pagemill.jobs.submission import (
    AfterResponse,
    publish_ingest,
    record_job,
    replayed_job,
    seal_password,
)
from pagemill.models import Job
from pagemill.models.base import utcnow
from pagemill.settings import Settings
from pagemill.tenancy.principal import Actor, Principal


def submit_url(
    sessions: SessionScope,
    settings: Settings,
    *,
    principal: Principal,
    actor: Actor,
    url: str,
    options: JobOptions,
    password: str | None,
    idempotency_key: str | None = None,
    after_response: AfterResponse | None = None,
    callback_url: str | None = None,
) -> tuple[Job, bool]:
    """Accept a document URL: the job (counted against the quota, audited, enqueued after commit) and
    whether it is an earlier job replayed for the same ``idempotency_key`` (same URL and options).

    Only what needs no network is checked here (pagemill.egress.guard.check_submission: scheme, userinfo,
    literal addresses, ``localhost``); UrlForbidden (422) otherwise. The worker resolves, checks and
    fetches (pagemill.jobs.url_source): the API never connects to a client's URL, and never waits on DNS.
    """
    checked = check_submission(url, EgressPolicy.from_settings(settings.egress))
    sealed_password = seal_password(password, settings)
    tier = settings.tiers.get(principal.tier)
    now = utcnow()
    job_id = str(uuid.uuid4())
    # One short transaction: nothing is stored before the job exists (the worker stores the fetched bytes).
    with sessions() as session:
        if idempotency_key is not None:
            earlier = repo.get_job_by_idempotency_key(session, principal.tenant_id, idempotency_key)
            if earlier is not None:
                return replayed_job(earlier, "", options, source_url=checked), True
        job = record_job(
            session,
            settings,
            job_id=job_id,
            principal=principal,
            actor=actor,
            now=now,
            filename=None,
            kind=None,
            size=None,
            digest=None,
            options=options,
            sealed_password=sealed_password,
            idempotency_key=idempotency_key,
            publish_after_commit=after_response is None,
            source_url=checked,
            callback_url=callback_url,
        )
    if after_response is not None:
        after_response(publish_ingest, job_id, tier.priority)
    return job, False
