"""All SQL of webhooks: endpoints, callback secrets, the relay's reads of the outbox, deliveries, attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pagemill.models import (
    CallbackSecret,
    DeliveryState,
    Event,
    Job,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

Cursor = tuple[datetime, str]
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.FAILED)
"""States of a delivery that will be attempted again."""


def _insert(session: Session) -> Any:
    # ON CONFLICT is dialect-specific in SQLAlchemy; both Postgres and SQLite (3.24+) support it.
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _newest_first(query: Any, model: Any, after: Cursor | None, limit: int) -> Any:
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
    if after is not None:
        created_at, row_id = after
        query = query.where(
            or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id))
        )
    return query


# --------------------------------------------------------------------------------------------------
# Endpoints


def add_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Insert an endpoint."""
    session.add(endpoint)
    session.flush()


def count_endpoints(session: Session, tenant_id: str) -> int:
    """How many endpoints the tenant has."""
    count = session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    )
    return int(count or 0)


def get_endpoint(session: Session, endpoint_id: str, tenant_id: str | None = None) -> WebhookEndpoint | None:
    """An endpoint by id (of ``tenant_id`` only, when given), or None."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (tenant_id is not None and endpoint.tenant_id != tenant_id):
        return None
    return endpoint


def list_endpoints(
    session: Session, tenant_id: str, *, limit: int, after: Cursor | None
) -> Sequence[WebhookEndpoint]:
    """A tenant's endpoints, newest first, after a (created_at, id) cursor."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    return session.scalars(_newest_first(query, WebhookEndpoint, after, limit)).all()


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint (its deliveries and their attempts go with it)."""
    session.delete(endpoint)
    session.flush()


def enabled_event_types(session: Session, tenant_id: str) -> list[list[str]]:
    """The event types of each enabled endpoint of the tenant (an empty list: every type but page events)."""
    rows = session.scalars(
        select(WebhookEndpoint.event_types).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    return [list(types or []) for types in rows]


def enabled_endpoints(session: Session, tenant_ids: Sequence[str]) -> Sequence[tuple[str, str, list[str]]]:
    """(id, tenant id, event types) of every enabled endpoint of these tenants."""
    if not tenant_ids:
        return []
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.tenant_id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.tenant_id.in_(sorted(set(tenant_ids))), WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    return [(row[0], row[1], list(row[2] or [])) for row in rows]


def disable_endpoint(session: Session, endpoint_id: str, reason: str, now: datetime) -> bool:
    """Disable an enabled endpoint; False if it was disabled already (or is gone)."""
    result = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def note_failure(session: Session, endpoint_id: str, now: datetime) -> datetime | None:
    """Record a failed attempt: the first failure since the last success (set now if there was none)."""
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.first_failure_at.is_(None))
        .values(first_failure_at=now)
    )
    return session.scalar(select(WebhookEndpoint.first_failure_at).where(WebhookEndpoint.id == endpoint_id))


def note_success(session: Session, endpoint_id: str) -> None:
    """Record a successful attempt: the endpoint is not failing any more."""
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.first_failure_at.is_not(None))
        .values(first_failure_at=None)
    )


# --------------------------------------------------------------------------------------------------
# Callback secrets and jobs


def get_callback_secret(session: Session, tenant_id: str) -> CallbackSecret | None:
    """The tenant's callback secret, or None."""
    return session.get(CallbackSecret, tenant_id)


def add_callback_secret(session: Session, secret: CallbackSecret) -> None:
    """Insert a tenant's callback secret."""
    session.add(secret)
    session.flush()


def job_tenant(session: Session, job_id: str) -> str | None:
    """The tenant of a job, or None."""
    return session.scalar(select(Job.tenant_id).where(Job.id == job_id))


def callback_urls(session: Session, job_ids: Sequence[str]) -> dict[str, str]:
    """The callback URL of each of these jobs that has one."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Job.id, Job.callback_url).where(
            Job.id.in_(sorted(set(job_ids))), Job.callback_url.is_not(None)
        )
    ).all()
    return {row[0]: row[1] for row in rows if row[1] is not None}


# --------------------------------------------------------------------------------------------------
# The relay's reads and writes of the outbox


def claim_unrelayed(session: Session, limit: int) -> Sequence[Event]:
    """The oldest events not relayed yet, locked to the commit on Postgres (a concurrent relay skips them;
    SQLite serialises writers, and a second pass adds no delivery twice)."""
    query = select(Event).where(Event.relayed_at.is_(None)).order_by(Event.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


def mark_relayed(session: Session, event_pks: Sequence[int], now: datetime) -> None:
    """Mark events relayed."""
    if event_pks:
        session.execute(update(Event).where(Event.id.in_(list(event_pks))).values(relayed_at=now))


def get_event(session: Session, event_pk: int) -> Event | None:
    """An event row by its id."""
    return session.get(Event, event_pk)


# --------------------------------------------------------------------------------------------------
# Deliveries and attempts


def add_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert deliveries, skipping any whose (target, event) is there already; the ids inserted."""
    if not rows:
        return []
    insert = _insert(session)
    statement = (
        insert(WebhookDelivery)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["target", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return [str(value) for value in session.scalars(statement).all()]


@dataclass(frozen=True)
class ClaimedDelivery:
    """What an attempt needs of the delivery it claimed."""

    id: str
    target: str
    endpoint_id: str | None
    url: str | None
    event_pk: int
    event_type: str
    tenant_id: str
    job_id: str | None
    attempts: int
    round_attempts: int


# Built once: a worker claims and settles hundreds of deliveries a second, and building these statements
# (and running them through the ORM's bulk-update machinery) cost more than the database did.
_DELIVERY = cast(Table, WebhookDelivery.__table__)
_EARLIER = _DELIVERY.alias("earlier")
_ATTEMPT = cast(Table, WebhookAttempt.__table__)
_CLAIM = (
    update(_DELIVERY)
    .where(
        _DELIVERY.c.id == bindparam("p_id"),
        _DELIVERY.c.state.in_(OPEN_STATES),
        _DELIVERY.c.next_attempt_at <= bindparam("p_now"),
        or_(_DELIVERY.c.locked_until.is_(None), _DELIVERY.c.locked_until <= bindparam("p_now")),
        or_(
            _DELIVERY.c.job_id.is_(None),
            ~exists().where(
                _EARLIER.c.target == _DELIVERY.c.target,
                _EARLIER.c.job_id == _DELIVERY.c.job_id,
                _EARLIER.c.event_pk < _DELIVERY.c.event_pk,
                _EARLIER.c.state == DeliveryState.PENDING,
            ),
        ),
    )
    .values(
        lock_id=bindparam("p_lock"),
        locked_until=bindparam("p_until"),
        state=DeliveryState.PENDING,
        attempts=_DELIVERY.c.attempts + 1,
        round_attempts=_DELIVERY.c.round_attempts + 1,
        updated_at=bindparam("p_now"),
    )
    .returning(*(_DELIVERY.c[field.name] for field in fields(ClaimedDelivery)))
)
_NEXT_IN_LINE = (
    select(_DELIVERY.c.id)
    .where(
        _DELIVERY.c.target == bindparam("p_target"),
        _DELIVERY.c.job_id == bindparam("p_job"),
        _DELIVERY.c.event_pk > bindparam("p_after"),
        _DELIVERY.c.state == DeliveryState.PENDING,
    )
    .order_by(_DELIVERY.c.event_pk)
    .limit(1)
)


def claim_delivery(
    session: Session, delivery_id: str, lock_id: str, now: datetime, until: datetime
) -> ClaimedDelivery | None:
    """Take a due delivery for one attempt (held until ``until`` under ``lock_id``), counting the attempt;
    None when it is not due, held by another worker, or an earlier event of the same job to the same
    target is still waiting for its attempt (one job's deliveries go out in event order)."""
    row = session.execute(
        _CLAIM, {"p_id": delivery_id, "p_now": now, "p_lock": lock_id, "p_until": until}
    ).first()
    return None if row is None else ClaimedDelivery(**row._mapping)


def finish_attempt(session: Session, delivery_id: str, lock_id: str, values: dict[str, Any]) -> bool:
    """Write an attempt's outcome on its delivery (and release it) if the attempt still holds it."""
    result = session.execute(
        update(_DELIVERY)
        .where(_DELIVERY.c.id == delivery_id, _DELIVERY.c.lock_id == lock_id)
        .values(lock_id=None, locked_until=None, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_attempt(session: Session, attempt: WebhookAttempt) -> None:
    """Record an attempt (a plain INSERT: the attempt is not read back in this session)."""
    values = {column.key: getattr(attempt, column.key) for column in _ATTEMPT.c if column.key != "id"}
    session.execute(insert(_ATTEMPT).values(values))


def next_in_line(session: Session, target: str, job_id: str, after_pk: int) -> str | None:
    """The next pending delivery of the same job to the same target (it waited for this one), or None."""
    found = session.execute(
        _NEXT_IN_LINE, {"p_target": target, "p_job": job_id, "p_after": after_pk}
    ).scalar()
    return None if found is None else str(found)


def end_open_deliveries(session: Session, endpoint_id: str, error: str, now: datetime) -> None:
    """Mark an endpoint's deliveries that were still to be attempted dead (it was disabled)."""
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.state.in_(OPEN_STATES),
            WebhookDelivery.lock_id.is_(None),
        )
        .values(state=DeliveryState.DEAD, next_attempt_at=None, last_error=error, updated_at=now)
    )


def take_due(session: Session, now: datetime, lost_before: datetime, limit: int) -> list[str]:
    """Deliveries due whose message is lost or was never sent (a long wait is left to the sweeper), marked
    as sent now; their ids."""
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state.in_(OPEN_STATES),
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.message_due_at.is_(None), WebhookDelivery.message_due_at <= lost_before),
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until <= now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = [str(value) for value in session.scalars(due).all()]
    if ids:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(message_due_at=now))
    return ids


def get_delivery(
    session: Session, delivery_id: str, *, tenant_id: str, target: str
) -> WebhookDelivery | None:
    """A delivery of the tenant to ``target`` (an endpoint id or CALLBACK_TARGET), or None."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.tenant_id != tenant_id or delivery.target != target:
        return None
    return delivery


def list_deliveries(
    session: Session,
    *,
    tenant_id: str,
    target: str,
    state: str | None,
    job_id: str | None,
    limit: int,
    after: Cursor | None,
) -> Sequence[WebhookDelivery]:
    """A target's deliveries, newest first, after a (created_at, id) cursor."""
    query = select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.target == target
    )
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if job_id is not None:
        query = query.where(WebhookDelivery.job_id == job_id)
    return session.scalars(_newest_first(query, WebhookDelivery, after, limit)).all()


def attempts_of(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    """Every attempt of these deliveries, by delivery, in order."""
    found: dict[str, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        rows = session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ).all()
        for attempt in rows:
            found[attempt.delivery_id].append(attempt)
    return found


def restart_delivery(session: Session, delivery_id: str, now: datetime) -> None:
    """Make a delivery due now with a fresh retry schedule (a replay); its message is sent after commit."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(
            state=DeliveryState.PENDING,
            round_attempts=0,
            next_attempt_at=now,
            message_due_at=now,
            updated_at=now,
        )
    )


def restart_failed_since(
    session: Session, *, tenant_id: str, target: str, since: datetime, now: datetime, limit: int
) -> list[str]:
    """Replay (as :func:`restart_delivery`) up to ``limit`` of a target's failed and dead deliveries made
    since ``since``, oldest first; their ids."""
    chosen = session.scalars(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.target == target,
            WebhookDelivery.state.in_((DeliveryState.FAILED, DeliveryState.DEAD)),
            WebhookDelivery.created_at >= since,
        )
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .limit(limit)
    ).all()
    ids = [str(value) for value in chosen]
    if ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(
                state=DeliveryState.PENDING,
                round_attempts=0,
                next_attempt_at=now,
                message_due_at=now,
                updated_at=now,
            )
        )
    return ids
