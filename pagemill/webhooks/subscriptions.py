"""Which event types a tenant's enabled endpoints subscribe to, remembered per process for a moment.

The outbox asks for every event it writes, page events included (one per page), whether some endpoint
wants it: without a cache that is a query per page save. A process remembers a tenant's subscriptions for
``webhooks.routing_cache_s``; the process that changes an endpoint forgets them at once, others within that
time (an event written meanwhile by another process follows the subscriptions it saw).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from pagemill.events.types import EventType
from pagemill.webhooks import repository as repo

# Types an endpoint subscribed to "everything" (no types named) receives: page events are one per page and
# must be asked for by name; pings go only to the endpoint they test.
BY_NAME_ONLY = frozenset({EventType.JOB_PAGE_COMPLETED.value, EventType.WEBHOOK_PING.value})
SUBSCRIBABLE = tuple(sorted(t.value for t in EventType if t is not EventType.WEBHOOK_PING))

_JOB_TENANTS_KEPT = 4096

_lock = threading.Lock()
_subscriptions: dict[str, tuple[float, tuple[frozenset[str], ...]]] = {}
_job_tenants: OrderedDict[str, str] = OrderedDict()


def subscribes(event_types: Iterable[str], type_: str) -> bool:
    """Whether an endpoint subscribed to ``event_types`` (empty: all but BY_NAME_ONLY) gets ``type_``."""
    types = frozenset(event_types)
    if not types:
        return type_ not in BY_NAME_ONLY
    return type_ in types


def tenant_subscribes(session: Session, tenant_id: str, type_: str, cache_s: float) -> bool:
    """Whether an enabled endpoint of the tenant subscribes to ``type_`` (cached for ``cache_s``)."""
    return any(subscribes(types, type_) for types in _tenant_subscriptions(session, tenant_id, cache_s))


def job_tenant(session: Session, job_id: str) -> str | None:
    """The tenant of a job (a job never changes tenant: remembered for the process's life, a few thousand)."""
    with _lock:
        tenant = _job_tenants.get(job_id)
    if tenant is not None:
        return tenant
    tenant = repo.job_tenant(session, job_id)
    if tenant is not None:
        with _lock:
            _job_tenants[job_id] = tenant
            while len(_job_tenants) > _JOB_TENANTS_KEPT:
                _job_tenants.popitem(last=False)
    return tenant


def forget(tenant_id: str) -> None:
    """Drop what this process remembers of a tenant's subscriptions (it changed an endpoint)."""
    with _lock:
        _subscriptions.pop(tenant_id, None)


def _tenant_subscriptions(session: Session, tenant_id: str, cache_s: float) -> Sequence[frozenset[str]]:
    now = time.monotonic()
    with _lock:
        cached = _subscriptions.get(tenant_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = tuple(frozenset(types) for types in repo.enabled_event_types(session, tenant_id))
    if cache_s > 0:
        with _lock:
            _subscriptions[tenant_id] = (now + cache_s, found)
    return found
