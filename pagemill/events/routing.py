"""Which events go beyond the outbox (to webhooks, callbacks and NATS), and waking the relay for them.

An event no sink wants is written already relayed; streams read every event from the outbox either way.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pagemill import queue
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
        return nats or _endpoint_subscribes(session, settings, tenant_id, type_)
    if settings.events.nats_url is not None or callback_url is not None:
        return True
    return _endpoint_subscribes(session, settings, tenant_id, type_)


def wants_page_events(session: Session, settings: Settings, job_id: str) -> bool:
    """Whether job.page_completed events are written for this job's pages (events.page_events)."""
    mode = settings.events.page_events
    if mode != "subscribed":
        return mode == "always"
    if settings.events.nats_url is not None and settings.events.nats_page_events:
        return True
    return _job_tenant_subscribes_to_pages(session, settings, job_id)


def _endpoint_subscribes(session: Session, settings: Settings, tenant_id: str, type_: EventType) -> bool:
    # Imported here: pagemill.webhooks imports the event types, and this module is imported by the outbox.
    from pagemill.webhooks.subscriptions import tenant_subscribes

    return tenant_subscribes(session, tenant_id, type_.value, settings.webhooks.routing_cache_s)


def _job_tenant_subscribes_to_pages(session: Session, settings: Settings, job_id: str) -> bool:
    from pagemill.webhooks.subscriptions import job_tenant

    tenant_id = job_tenant(session, job_id)
    return tenant_id is not None and _endpoint_subscribes(
        session, settings, tenant_id, EventType.JOB_PAGE_COMPLETED
    )


def relay_after_commit(session: Session) -> None:
    """Wake the relay (``pagemill.relay_events`` on the webhooks queue) once ``session`` commits: once per
    transaction, however many events it wrote. A lost message costs a sweep's wait: every sweep relays."""
    if not queue.pending_after_commit(session, queue.RELAY_EVENTS):
        queue.enqueue_after_commit(session, queue.RELAY_EVENTS, [], queue.WEBHOOKS_QUEUE)
