"""API keys, authentication, the audit log and document quotas on real migrated databases.

Every test runs on SQLite (embedded mode) and on Postgres (distributed mode). Each step runs in its own
``session_scope`` (one committed transaction), the way the API uses the services, so what one request
writes is what the next one reads. Tenants are unique per test, so tests never see each other's keys or
counters (the Postgres database is shared with other modules of the same pytest worker).
"""

from __future__ import annotations

import string
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pagemill import db
from pagemill.errors import NotFound, QuotaExceeded, Unauthorized, ValidationFailed
from pagemill.migrate import upgrade_to_head
from pagemill.models import DEFAULT_TENANT, ApiKey, AuditEvent, Job, Tenant
from pagemill.models.base import utcnow
from pagemill.settings import AuthSettings, Settings, TierSettings, get_settings
from pagemill.tenancy import audit, keys, service, usage
from pagemill.tenancy import repository as repo
from pagemill.tenancy.principal import ADMIN_SCOPE, Actor, Principal

pytestmark = pytest.mark.integration

CLI = Actor(subject="cli:tester")
ALPHABET = string.digits + string.ascii_letters


@pytest.fixture
def tenant(database: str) -> str:
    """A tenant id no other test uses (the tenant row is created by the test, if it needs one)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def in_session(action: Callable[[Session], Any]) -> Any:
    """Run ``action`` in its own committed transaction and return its result."""
    with db.session_scope() as session:
        return action(session)


def make_key(tenant_id: str, tier: str | None = None, **kwargs: Any) -> tuple[ApiKey, str]:
    """Create and commit a key; the row and the secret."""
    kwargs.setdefault("actor", CLI)
    return in_session(  # type: ignore[no-any-return]
        lambda s: service.create_key(s, tenant_id=tenant_id, tier=tier, **kwargs)
    )


def authenticate(secret: str, settings: Settings | None = None) -> Principal:
    return in_session(  # type: ignore[no-any-return]
        lambda s: service.authenticate_key(s, settings or get_settings(), secret)
    )


def load_key(key_id: str) -> ApiKey:
    key = in_session(lambda s: repo.get_key(s, key_id))
    assert key is not None
    return key  # type: ignore[no-any-return]


def events_of(tenant_id: str, action: str | None = None) -> list[AuditEvent]:
    return list(in_session(lambda s: audit.list_events(s, tenant_id=tenant_id, action=action)))


def unauthorized_reason(secret: str) -> dict[str, Any]:
    with pytest.raises(Unauthorized) as caught:
        authenticate(secret)
    assert caught.value.code == "UNAUTHORIZED" and caught.value.http_status == 401
    return caught.value.details


def test_migrating_again_is_a_quiet_no_op(database: str) -> None:
    upgrade_to_head()


# --- keys and authentication --------------------------------------------------------------------------------


def test_a_created_key_authenticates_as_its_tenant(tenant: str) -> None:
    key, secret = make_key(tenant, "free", name="ci")
    assert keys.looks_like_key(secret)
    assert key.tenant_id == tenant and key.name == "ci" and key.scopes == []
    assert key.prefix == keys.display_prefix(secret)
    assert key.revoked_at is None and key.expires_at is None and key.last_used_at is None

    principal = authenticate(secret)
    assert principal == Principal(
        tenant_id=tenant, tier="free", subject=f"key:{key.id}", rate_key=key.id, scopes=frozenset()
    )
    assert not principal.is_admin


def test_only_the_digest_and_the_prefix_of_a_key_are_stored(tenant: str) -> None:
    key, secret = make_key(tenant)
    stored = load_key(key.id)
    assert stored.secret_hash == keys.digest_of(secret)
    columns = [getattr(stored, column.key) for column in ApiKey.__table__.columns]
    assert not any(secret in str(value) for value in columns)
    assert not any(secret[16:] in str(value) for value in columns), "only the display prefix is in clear"


def test_an_admin_key_carries_the_admin_scope(tenant: str) -> None:
    key, secret = make_key(tenant, "enterprise", scopes=[ADMIN_SCOPE, ADMIN_SCOPE])
    assert key.scopes == [ADMIN_SCOPE]
    principal = authenticate(secret)
    assert principal.scopes == frozenset({ADMIN_SCOPE}) and principal.is_admin
    assert principal.tier == "enterprise"


def test_a_new_tenant_without_a_tier_is_standard(tenant: str) -> None:
    _, secret = make_key(tenant)
    assert authenticate(secret).tier == "standard"
    stored = in_session(lambda s: repo.get_tenant(s, tenant))
    assert stored is not None and stored.tier == "standard"


def test_malformed_keys_are_refused_without_a_lookup(tenant: str) -> None:
    _, secret = make_key(tenant)
    for bad in ["", "pm_live_", "Bearer " + secret, secret[:-1], secret + "0", secret.upper(), "x" * 46]:
        assert unauthorized_reason(bad) == {"reason": "malformed"}, bad
    changed = secret[:20] + ("a" if secret[20] != "a" else "b") + secret[21:]
    assert unauthorized_reason(changed) == {"reason": "malformed"}


def test_an_unknown_key_is_refused(tenant: str) -> None:
    make_key(tenant)
    assert unauthorized_reason(keys.generate_key().secret) == {"reason": "unknown"}


def _with_checksum(body: str) -> str:
    """A well-formed key of ``body`` (prefix and 32 characters): its CRC-32 appended in 6 base62 chars."""
    number = zlib.crc32(body.encode())
    chars = []
    for _ in range(6):
        number, rest = divmod(number, 62)
        chars.append(ALPHABET[rest])
    return body + "".join(reversed(chars))


def test_a_key_sharing_the_display_prefix_of_a_real_key_is_still_unknown(tenant: str) -> None:
    # Same prefix (so the lookup finds the real key's row), different secret: the digest must decide.
    key, secret = make_key(tenant)
    forged = _with_checksum(secret[:16] + keys.generate_key().secret[16:-6])
    assert keys.looks_like_key(forged) and keys.display_prefix(forged) == key.prefix and forged != secret
    assert unauthorized_reason(forged) == {"reason": "unknown"}
    assert authenticate(secret).subject == f"key:{key.id}"


def test_a_revoked_key_is_refused_from_the_very_next_request(tenant: str) -> None:
    key, secret = make_key(tenant)
    assert authenticate(secret).rate_key == key.id  # in use: whatever could be cached, is
    revoked = in_session(lambda s: service.revoke_key(s, key.id, actor=CLI))
    assert revoked.revoked_at is not None
    assert unauthorized_reason(secret) == {"reason": "revoked", "key_id": key.id}
    assert load_key(key.id).revoked_at == revoked.revoked_at


def test_revocation_is_seen_by_a_session_that_already_authenticated_the_key(tenant: str) -> None:
    # Another replica (another session and connection) revokes while this one holds its own session open.
    key, secret = make_key(tenant)
    with db.session_scope() as session:
        assert service.authenticate_key(session, get_settings(), secret).rate_key == key.id
        session.commit()
        in_session(lambda s: service.revoke_key(s, key.id, actor=CLI))
        with pytest.raises(Unauthorized) as caught:
            service.authenticate_key(session, get_settings(), secret)
    assert caught.value.details["reason"] == "revoked"


def test_revoking_twice_changes_nothing_and_unknown_ids_are_not_found(tenant: str) -> None:
    key, _ = make_key(tenant)
    first = in_session(lambda s: service.revoke_key(s, key.id, actor=CLI)).revoked_at
    again = in_session(lambda s: service.revoke_key(s, key.id, actor=CLI)).revoked_at
    assert first == again
    assert len(events_of(tenant, audit.KEY_REVOKED)) == 1
    with pytest.raises(NotFound) as caught:
        in_session(lambda s: service.revoke_key(s, "key_0000000000000000", actor=CLI))
    assert caught.value.code == "NOT_FOUND" and caught.value.details == {"key_id": "key_0000000000000000"}


def test_an_expired_key_is_refused(tenant: str) -> None:
    expires = utcnow() + timedelta(seconds=1.5)
    key, secret = make_key(tenant, expires_at=expires)
    assert authenticate(secret).rate_key == key.id  # not yet expired
    time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.05)
    assert unauthorized_reason(secret) == {"reason": "expired", "key_id": key.id}


def test_a_key_expiring_later_works_until_then(tenant: str) -> None:
    expires = utcnow() + timedelta(days=30)
    key, secret = make_key(tenant, expires_at=expires)
    assert load_key(key.id).expires_at == expires
    assert authenticate(secret).rate_key == key.id
    # The same key, with its expiry moved into the past (as time passing would), is refused.
    in_session(
        lambda s: s.execute(
            update(ApiKey).where(ApiKey.id == key.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    )
    assert unauthorized_reason(secret)["reason"] == "expired"


def test_two_keys_of_one_tenant_both_work_and_revoking_one_keeps_the_other(tenant: str) -> None:
    first, first_secret = make_key(tenant, name="one")
    second, second_secret = make_key(tenant, name="two")
    assert first.id != second.id and first.prefix != second.prefix
    assert authenticate(first_secret).rate_key == first.id
    assert authenticate(second_secret).rate_key == second.id
    assert {authenticate(s).tenant_id for s in (first_secret, second_secret)} == {tenant}
    listed = in_session(lambda s: service.list_keys(s, tenant_id=tenant))
    assert [key.id for key in listed] == [second.id, first.id], "newest first"

    in_session(lambda s: service.revoke_key(s, first.id, actor=CLI))
    assert unauthorized_reason(first_secret)["reason"] == "revoked"
    assert authenticate(second_secret).rate_key == second.id
    assert [k.id for k in in_session(lambda s: service.list_keys(s, tenant_id=tenant))] == [second.id]
    everything = in_session(lambda s: service.list_keys(s, tenant_id=tenant, include_revoked=True))
    assert [k.id for k in everything] == [second.id, first.id]


def test_list_keys_of_every_tenant(tenant: str) -> None:
    other = f"{tenant}-other"
    mine, _ = make_key(tenant)
    theirs, _ = make_key(other)
    every = {key.id for key in in_session(lambda s: service.list_keys(s, tenant_id=None))}
    assert {mine.id, theirs.id} <= every
    assert {k.id for k in in_session(lambda s: service.list_keys(s, tenant_id=other))} == {theirs.id}


def test_a_new_key_with_another_tier_moves_the_tenant(tenant: str) -> None:
    _, old_secret = make_key(tenant, "free")
    assert authenticate(old_secret).tier == "free"
    make_key(tenant, None)  # no tier: the tenant stays where it is
    assert authenticate(old_secret).tier == "free"
    _, new_secret = make_key(tenant, "enterprise")
    # The tier belongs to the tenant: every key of it moves at once.
    assert authenticate(old_secret).tier == "enterprise"
    assert authenticate(new_secret).tier == "enterprise"
    details = [event.details for event in events_of(tenant, audit.KEY_CREATED)]
    assert [d["tier"] if d else None for d in details] == ["enterprise", None, "free"]


def test_last_used_is_written_at_most_once_per_resolution(tenant: str) -> None:
    key, secret = make_key(tenant)
    hourly = Settings(auth=AuthSettings(last_used_resolution_s=3600))
    before = utcnow()
    authenticate(secret, hourly)
    first = load_key(key.id).last_used_at
    assert first is not None and before <= first <= utcnow()
    for _ in range(3):
        time.sleep(0.01)
        authenticate(secret, hourly)
    assert load_key(key.id).last_used_at == first, "a use within the resolution writes nothing"

    # Once the last write is older than the resolution, the next use writes again.
    in_session(
        lambda s: s.execute(
            update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=utcnow() - timedelta(hours=2))
        )
    )
    before = utcnow()
    authenticate(secret, hourly)
    rewritten = load_key(key.id).last_used_at
    assert rewritten is not None and rewritten >= before


def test_last_used_with_a_zero_resolution_is_written_on_every_use(tenant: str) -> None:
    key, secret = make_key(tenant)
    always = Settings(auth=AuthSettings(last_used_resolution_s=0))
    seen: list[datetime] = []
    for _ in range(3):
        authenticate(secret, always)
        last_used = load_key(key.id).last_used_at
        assert last_used is not None
        seen.append(last_used)
        time.sleep(0.002)
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_a_refused_key_does_not_touch_last_used(tenant: str) -> None:
    key, secret = make_key(tenant)
    in_session(lambda s: service.revoke_key(s, key.id, actor=CLI))
    unauthorized_reason(secret)
    assert load_key(key.id).last_used_at is None


# --- bootstrap and anonymous --------------------------------------------------------------------------------


def test_bootstrap_makes_one_admin_key_for_the_default_tenant_once(database: str) -> None:
    # Bootstrap only acts when no key at all is active: revoke whatever other tests left active.
    in_session(
        lambda s: s.execute(update(ApiKey).where(ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow()))
    )
    secret = in_session(service.bootstrap_key)
    assert secret is not None and keys.looks_like_key(secret)
    principal = authenticate(secret)
    assert principal.tenant_id == DEFAULT_TENANT == "default"
    assert principal.tier == "enterprise", "the migration creates the default tenant on enterprise"
    assert principal.is_admin
    key = load_key(principal.rate_key)
    assert key.name == "bootstrap"

    assert in_session(service.bootstrap_key) is None
    assert in_session(service.bootstrap_key) is None
    active = in_session(lambda s: service.list_keys(s, tenant_id=None))
    assert [k.id for k in active] == [key.id]
    created = [e for e in events_of(DEFAULT_TENANT, audit.KEY_CREATED) if e.target == key.id]
    assert len(created) == 1 and created[0].actor.startswith("cli:")


def test_the_anonymous_principal_is_the_default_tenants_admin() -> None:
    principal = service.anonymous_principal()
    assert (principal.tenant_id, principal.tier, principal.subject) == ("default", "enterprise", "anonymous")
    assert principal.is_admin and principal.rate_key == "anonymous"


def test_a_token_tenant_gets_a_row(tenant: str) -> None:
    principal = Principal(tenant_id=tenant, tier="free", subject="oidc:someone", rate_key="oidc:someone")
    in_session(lambda s: service.ensure_token_tenant(s, principal))
    in_session(lambda s: service.ensure_token_tenant(s, principal))
    row = in_session(lambda s: repo.get_tenant(s, tenant))
    assert row is not None and row.tier == "free"


def test_a_token_tenant_whose_first_request_rolled_back_still_gets_a_row(tenant: str) -> None:
    # The first request of a new OIDC tenant fails (a 404, a bad upload...): its transaction, with the
    # tenant row, rolls back. A later request must still create the row, or its jobs cannot refer to it.
    principal = Principal(tenant_id=tenant, tier="free", subject="oidc:first", rate_key="oidc:first")
    with pytest.raises(NotFound), db.session_scope() as session:
        service.ensure_token_tenant(session, principal)
        raise NotFound("No job with this id.")
    in_session(lambda s: service.ensure_token_tenant(s, principal))
    assert in_session(lambda s: repo.get_tenant(s, tenant)) is not None


# --- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_tenant",
    ["", "Bad Tenant!", "UPPER", "-leading-dash", ".dot", "_under", "a" * 65, "with space", "slash/es", "é"],
)
def test_bad_tenant_ids_are_refused(database: str, bad_tenant: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        make_key(bad_tenant)
    assert caught.value.code == "VALIDATION_ERROR" and caught.value.details == {"field": "tenant"}
    assert in_session(lambda s: repo.get_tenant(s, bad_tenant)) is None


@pytest.mark.parametrize("good_tenant", ["a", "0", "acme", "acme-corp.eu_1", "x" * 64])
def test_good_tenant_ids_are_accepted(database: str, good_tenant: str) -> None:
    key, secret = make_key(good_tenant)
    assert authenticate(secret).tenant_id == good_tenant == key.tenant_id


def test_unknown_scopes_unknown_tiers_and_past_expiry_are_refused(tenant: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"scopes": ["admin", "superuser", "root"]}, "scopes"),
        ({"tier": "platinum"}, "tier"),
        ({"expires_at": utcnow() - timedelta(seconds=1)}, "expires_at"),
        ({"expires_at": utcnow() - timedelta(days=400)}, "expires_at"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as caught:
            make_key(tenant, **kwargs)
        assert caught.value.details == {"field": field}, kwargs
    with pytest.raises(ValidationFailed, match="root, superuser"):
        make_key(tenant, scopes=["root", "superuser"])
    # Nothing was written: no tenant, no key, no event.
    assert in_session(lambda s: repo.get_tenant(s, tenant)) is None
    assert in_session(lambda s: service.list_keys(s, tenant_id=tenant, include_revoked=True)) == []
    assert events_of(tenant) == []


# --- audit --------------------------------------------------------------------------------------------------


def test_key_events_record_who_from_where_and_which_request(tenant: str) -> None:
    admin = Actor(
        subject="key:key_adminadminadmin",
        tenant_id="ops",
        ip="203.0.113.7",
        user_agent="curl/8.5",
        request_id="req-123",
    )
    before = utcnow()
    key, _ = make_key(tenant, "free", name="billing", actor=admin)
    in_session(lambda s: service.revoke_key(s, key.id, actor=CLI))

    revoked, created = events_of(tenant)  # newest first
    assert (created.action, created.target, created.tenant_id) == (audit.KEY_CREATED, key.id, tenant)
    assert (created.actor, created.ip, created.user_agent, created.request_id) == (
        "key:key_adminadminadmin",
        "203.0.113.7",
        "curl/8.5",
        "req-123",
    )
    assert created.details == {"prefix": key.prefix, "scopes": [], "tier": "free", "name": "billing"}
    assert before <= created.at <= revoked.at <= utcnow()
    assert (revoked.action, revoked.target, revoked.actor) == (audit.KEY_REVOKED, key.id, "cli:tester")
    assert (revoked.ip, revoked.user_agent, revoked.request_id, revoked.details) == (None, None, None, None)
    assert [e.id for e in events_of(tenant, audit.KEY_REVOKED)] == [revoked.id]


def test_an_action_that_rolls_back_leaves_no_event(tenant: str) -> None:
    actor = Actor(subject="key:key_x", ip="198.51.100.1", request_id="req-rolled-back")
    with pytest.raises(RuntimeError, match="after the key"), db.session_scope() as session:
        key, _ = service.create_key(session, tenant_id=tenant, tier="free", actor=actor)
        assert len(audit.list_events(session, tenant_id=tenant)) == 1, "visible inside the transaction"
        raise RuntimeError("the request failed after the key was made")
    assert events_of(tenant) == []
    assert in_session(lambda s: repo.get_key(s, key.id)) is None
    assert in_session(lambda s: repo.get_tenant(s, tenant)) is None

    # A revocation that rolls back neither revokes nor leaves an event.
    kept, secret = make_key(tenant)
    with pytest.raises(RuntimeError), db.session_scope() as session:
        service.revoke_key(session, kept.id, actor=actor)
        raise RuntimeError("rolled back")
    assert authenticate(secret).rate_key == kept.id
    assert [e.action for e in events_of(tenant)] == [audit.KEY_CREATED]


def test_audit_filters_by_action_since_and_limit(tenant: str) -> None:
    created = [make_key(tenant)[0] for _ in range(3)]
    in_session(lambda s: service.revoke_key(s, created[0].id, actor=CLI))
    assert len(events_of(tenant)) == 4
    assert [e.target for e in events_of(tenant, audit.KEY_CREATED)] == [k.id for k in reversed(created)]
    newest = in_session(lambda s: audit.list_events(s, tenant_id=tenant, limit=2))
    assert [e.action for e in newest] == [audit.KEY_REVOKED, audit.KEY_CREATED]
    future = utcnow() + timedelta(minutes=1)
    assert in_session(lambda s: audit.list_events(s, tenant_id=tenant, since=future)) == []


# --- quotas -------------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)  # 30 s before both the day and the month renew


def make_tenant(tenant_id: str, tier: str = "free") -> None:
    in_session(lambda s: repo.ensure_tenant(s, tenant_id, tier))


def take(tenant_id: str, tier: TierSettings, now: datetime = NOW) -> None:
    in_session(lambda s: usage.take_document(s, tenant_id, "free", tier, now))


def used(tenant_id: str, period: str, key: str) -> int:
    return in_session(lambda s: repo.usage(s, tenant_id, period, key))  # type: ignore[no-any-return]


def test_take_document_counts_the_day_and_the_month(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=10, documents_per_month=100)
    for _ in range(3):
        take(tenant, tier)
    take(tenant, tier, NOW - timedelta(days=1))  # yesterday, same month
    assert used(tenant, "day", "2026-11-30") == 3
    assert used(tenant, "day", "2026-11-29") == 1
    assert used(tenant, "month", "2026-11") == 4
    take(tenant, tier, NOW + timedelta(seconds=31))  # the next day is also the next month
    assert (used(tenant, "day", "2026-12-01"), used(tenant, "month", "2026-12")) == (1, 1)
    assert used(tenant, "month", "2026-11") == 4


def test_unlimited_tiers_still_count(tenant: str) -> None:
    make_tenant(tenant, "enterprise")
    unlimited = TierSettings()
    for _ in range(5):
        take(tenant, unlimited)
    assert (used(tenant, "day", "2026-11-30"), used(tenant, "month", "2026-11")) == (5, 5)


def test_counters_are_per_tenant(tenant: str) -> None:
    other = f"{tenant}-b"
    make_tenant(tenant)
    make_tenant(other)
    tier = TierSettings(documents_per_day=2)
    take(tenant, tier)
    take(tenant, tier)
    take(other, tier)  # not affected by the first tenant's full day
    assert (used(tenant, "day", "2026-11-30"), used(other, "day", "2026-11-30")) == (2, 1)


def test_exceeding_the_day_quota_says_when_it_renews(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=2, documents_per_month=100)
    take(tenant, tier)
    take(tenant, tier)
    with pytest.raises(QuotaExceeded) as caught:
        take(tenant, tier)
    error = caught.value
    assert error.code == "QUOTA_EXCEEDED" and error.http_status == 429
    assert error.retry_after_s == 31  # 30 s to midnight, rounded up
    assert error.details == {
        "retry_after_s": 31,
        "period": "day",
        "limit": 2,
        "resets_at": "2026-12-01T00:00:00+00:00",
    }
    assert error.headers() == {"Retry-After": "31"}
    assert "2 documents per day" in error.message
    # Refused means not counted, on either counter.
    assert (used(tenant, "day", "2026-11-30"), used(tenant, "month", "2026-11")) == (2, 2)
    # The next day has a fresh quota.
    take(tenant, tier, NOW + timedelta(minutes=1))
    assert used(tenant, "day", "2026-12-01") == 1


def test_exceeding_the_month_quota_gives_the_day_count_back(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=10, documents_per_month=3)
    mid_month = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    take(tenant, tier, mid_month - timedelta(days=1))
    take(tenant, tier, mid_month)
    take(tenant, tier, mid_month)
    with pytest.raises(QuotaExceeded) as caught:
        take(tenant, tier, mid_month)
    assert caught.value.details["period"] == "month"
    assert caught.value.details["limit"] == 3
    assert caught.value.details["resets_at"] == "2026-12-01T00:00:00+00:00"
    assert (
        caught.value.retry_after_s == int((datetime(2026, 12, 1, tzinfo=UTC) - mid_month).total_seconds()) + 1
    )
    # The day counter was incremented first, in the same transaction, and the rollback returned it.
    assert used(tenant, "day", "2026-11-10") == 2
    assert used(tenant, "month", "2026-11") == 3


def test_a_zero_quota_refuses_everything(tenant: str) -> None:
    make_tenant(tenant)
    with pytest.raises(QuotaExceeded) as caught:
        take(tenant, TierSettings(documents_per_day=0))
    assert caught.value.details["limit"] == 0 and caught.value.details["period"] == "day"
    with pytest.raises(QuotaExceeded) as caught:
        take(tenant, TierSettings(documents_per_month=0))
    assert caught.value.details["period"] == "month"
    assert (used(tenant, "day", "2026-11-30"), used(tenant, "month", "2026-11")) == (0, 0)


def test_check_document_quota_refuses_early_and_takes_nothing(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=2, documents_per_month=100)

    def check() -> None:
        in_session(lambda s: usage.check_document_quota(s, tenant, "free", tier, NOW))

    check()
    check()
    assert used(tenant, "day", "2026-11-30") == 0
    take(tenant, tier)
    check()
    take(tenant, tier)
    with pytest.raises(QuotaExceeded) as caught:
        check()
    assert caught.value.details["period"] == "day" and caught.value.retry_after_s == 31
    assert used(tenant, "day", "2026-11-30") == 2


def test_a_failed_request_after_taking_gives_the_document_back(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=1)
    with pytest.raises(RuntimeError), db.session_scope() as session:
        usage.take_document(session, tenant, "free", tier, NOW)
        raise RuntimeError("storing the upload failed")
    assert used(tenant, "day", "2026-11-30") == 0
    take(tenant, tier)  # the one document of the day is still available


RACERS = 20


def _race_for_the_last_document(tenant_id: str, tier: TierSettings) -> tuple[int, int, list[BaseException]]:
    """RACERS threads, each in its own session and transaction, take a document at once.

    Each holds its transaction open a moment after taking, so the transactions overlap whatever the
    scheduling. Returns (successes, QuotaExceeded refusals, other errors).
    """
    barrier = threading.Barrier(RACERS)
    lock = threading.Lock()
    outcome = {"taken": 0, "refused": 0}
    errors: list[BaseException] = []

    def racer() -> None:
        barrier.wait(timeout=30)
        try:
            with db.session_scope() as session:
                usage.take_document(session, tenant_id, "free", tier, NOW)
                time.sleep(0.05)
            with lock:
                outcome["taken"] += 1
        except QuotaExceeded:
            with lock:
                outcome["refused"] += 1
        except BaseException as exc:
            with lock:
                errors.append(exc)

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        for future in [pool.submit(racer) for _ in range(RACERS)]:
            future.result(timeout=120)
    return outcome["taken"], outcome["refused"], errors


def test_racing_for_the_last_document_of_the_day_exactly_one_wins(tenant: str) -> None:
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=5, documents_per_month=1000)
    for _ in range(4):
        take(tenant, tier)
    taken, refused, errors = _race_for_the_last_document(tenant, tier)
    # On SQLite writers queue behind one another (busy_timeout 30 s), so none fails with "database is
    # locked"; on Postgres the conflicting row is locked and the quota re-checked after each commit.
    assert errors == [], [repr(e) for e in errors]
    assert (taken, refused) == (1, RACERS - 1)
    assert used(tenant, "day", "2026-11-30") == 5
    assert used(tenant, "month", "2026-11") == 5


def test_racing_for_a_fresh_quota_never_overshoots(tenant: str) -> None:
    # No counter row yet: the racers also race to insert it.
    make_tenant(tenant)
    tier = TierSettings(documents_per_day=7)
    taken, refused, errors = _race_for_the_last_document(tenant, tier)
    assert errors == [], [repr(e) for e in errors]
    assert (taken, refused) == (7, RACERS - 7)
    assert used(tenant, "day", "2026-11-30") == 7
    assert used(tenant, "month", "2026-11") == 7


# --- usage report -------------------------------------------------------------------------------------------


def _add_job(tenant_id: str, pages_done: int, created_at: datetime) -> None:
    job_id = str(uuid.uuid4())
    in_session(
        lambda s: s.add(
            Job(
                id=job_id,
                tenant_id=tenant_id,
                state="succeeded",
                filename="doc.pdf",
                kind="pdf",
                size_bytes=1,
                sha256="0" * 64,
                source_key=f"jobs/{job_id}/source",
                options={},
                pages_done=pages_done,
                created_at=created_at,
                updated_at=created_at,
            )
        )
    )


def test_usage_of_reports_used_limits_resets_and_pages_this_month(tenant: str) -> None:
    other = f"{tenant}-b"
    make_tenant(tenant)
    make_tenant(other)
    tier = TierSettings(documents_per_day=10, documents_per_month=50)
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    for when in (now, now, now, now - timedelta(days=2)):
        take(tenant, tier, when)
    take(other, tier, now)
    _add_job(tenant, 7, now - timedelta(hours=1))
    _add_job(tenant, 5, datetime(2026, 11, 1, tzinfo=UTC))  # the first instant of the month counts
    _add_job(tenant, 100, datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))  # last month
    _add_job(other, 1000, now)

    day, month, pages = in_session(lambda s: usage.usage_of(s, tenant, tier, now))
    assert (day.used, day.limit, day.resets_at) == (3, 10, datetime(2026, 11, 23, tzinfo=UTC))
    assert (month.used, month.limit, month.resets_at) == (4, 50, datetime(2026, 12, 1, tzinfo=UTC))
    assert pages == 12


def test_usage_of_a_tenant_that_did_nothing(tenant: str) -> None:
    make_tenant(tenant)
    day, month, pages = in_session(lambda s: usage.usage_of(s, tenant, TierSettings(), NOW))
    assert (day.used, day.limit, month.used, month.limit, pages) == (0, None, 0, None, 0)


def test_the_default_tenant_exists_after_migration(database: str) -> None:
    row = in_session(lambda s: s.scalar(select(Tenant).where(Tenant.id == DEFAULT_TENANT)))
    assert row is not None and row.tier == "enterprise"
