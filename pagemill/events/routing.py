"""Which events go beyond the outbox (to webhooks, callbacks and NATS), and waking the relay for them.

An event no sink wants is written already relayed; streams read every event from the outbox either way.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pagemill.events.types import EventType
from pagemill.settings import Settings


def wants(
    session: Session, settings: Settings, tenant_id: str, type_: EventType, callback_url: str | None
) -> bool:
    """True when a sink takes this event: NATS is configured, the job has a callback URL, or an enabled
    webhook endpoint of the tenant subscribes to the type."""
    if type_ == EventType.JOB_PAGE_COMPLETED:
        # Page events go to NATS only on request (one per page).
        nats = settings.events.nats_url is not None and settings.events.nats_page_events
        return nats or _endpoint_subscribes(session, tenant_id, type_)
    if settings.events.nats_url is not None or callback_url is not None:
        return True
    return _endpoint_subscribes(session, tenant_id, type_)


def wants_page_events(session: Session, settings: Settings, job_id: str) -> bool:
    """Whether job.page_completed events are written for this job's pages (events.page_events)."""
    mode = settings.events.page_events
    if mode != "subscribed":
        return mode == "always"
    if settings.events.nats_url is not None and settings.events.nats_page_events:
        return True
    return _job_tenant_subscribes_to_pages(session, job_id)


def _endpoint_subscribes(session: Session, tenant_id: str, type_: EventType) -> bool:
    return False  # webhook endpoints: see the webhooks brief


def _job_tenant_subscribes_to_pages(session: Session, job_id: str) -> bool:
    return False  # webhook endpoints: see the webhooks brief


def relay_after_commit(session: Session) -> None:
    """Wake the relay once ``session`` commits (once per session, however many events it wrote)."""
    return None  # the relay task: see the webhooks brief
