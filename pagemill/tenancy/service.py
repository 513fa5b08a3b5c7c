"""API keys and authentication: create, list, revoke, check a presented key or token. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from pagemill.errors import NotFound, Unauthorized, ValidationFailed
from pagemill.models import DEFAULT_TENANT, ApiKey
from pagemill.models.base import utcnow
from pagemill.settings import TIER_NAMES, Settings
from pagemill.tenancy import audit, keys
from pagemill.tenancy import repository as repo
from pagemill.tenancy.principal import ADMIN_SCOPE, TENANT_ID_PATTERN, Actor, Principal

SCOPES = (ADMIN_SCOPE,)


def _check_tenant_id(tenant_id: str) -> None:
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise ValidationFailed(
            "A tenant id is 1-64 characters: lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit.",
            field="tenant",
        )


def create_key(
    session: Session,
    *,
    tenant_id: str,
    tier: str | None,
    actor: Actor,
    name: str = "",
    scopes: Sequence[str] = (),
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Make a key for ``tenant_id`` (creating the tenant, on ``tier`` or standard); the row and the secret.

    The secret is returned once and never stored. Passing ``tier`` for an existing tenant moves it.
    """
    _check_tenant_id(tenant_id)
    if tier is not None and tier not in TIER_NAMES:
        raise ValidationFailed(f"tier must be one of {', '.join(TIER_NAMES)}.", field="tier")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {', '.join(unknown)}.", field="scopes")
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires_at must be in the future.", field="expires_at")
    tenant = repo.get_tenant(session, tenant_id)
    if tenant is None:
        repo.ensure_tenant(session, tenant_id, tier or "standard")
    elif tier is not None and tier != tenant.tier:
        repo.set_tier(session, tenant_id, tier)
    new = keys.generate_key()
    key = ApiKey(
        id=keys.new_key_id(),
        tenant_id=tenant_id,
        prefix=new.prefix,
        secret_hash=new.digest,
        name=name[:128],
        scopes=sorted(set(scopes)),
        created_at=now,
        expires_at=expires_at,
    )
    repo.add_key(session, key)
    session.flush()
    audit.record(
        session,
        actor,
        audit.KEY_CREATED,
        target=key.id,
        tenant_id=tenant_id,
        details={"prefix": key.prefix, "scopes": key.scopes, "tier": tier, "name": key.name or None},
    )
    return key, new.secret


def list_keys(session: Session, *, tenant_id: str | None, include_revoked: bool = False) -> Sequence[ApiKey]:
    """Keys of one tenant (or every tenant), newest first."""
    return repo.list_keys(session, tenant_id=tenant_id, include_revoked=include_revoked)


def revoke_key(session: Session, key_id: str, *, actor: Actor) -> ApiKey:
    """Revoke a key; it is refused from the next request on. Revoking a revoked key changes nothing.

    Ids are made in lower case (``key_`` and hex digits), so any spelling of one finds it."""
    key_id = key_id.lower()
    key = repo.get_key(session, key_id)
    if key is None:
        raise NotFound("No API key with this id.", key_id=key_id)
    if key.revoked_at is None:
        repo.revoke_key(session, key_id, utcnow())
        audit.record(session, actor, audit.KEY_REVOKED, target=key_id, tenant_id=key.tenant_id)
        session.flush()
        session.refresh(key)
    return key


def bootstrap_key(session: Session) -> str | None:
    """On a fresh install (no usable key: none, or all revoked or expired), make an admin key for the
    default tenant; its secret."""
    if repo.count_usable_keys(session, utcnow()):
        return None
    _, secret = create_key(
        session,
        tenant_id=DEFAULT_TENANT,
        tier=None,
        actor=Actor.cli(),
        name="bootstrap",
        scopes=[ADMIN_SCOPE],
    )
    return secret


def anonymous_principal() -> Principal:
    """The caller when auth is disabled by setting: the default tenant's admin, enterprise tier."""
    return Principal(
        tenant_id=DEFAULT_TENANT,
        tier="enterprise",
        subject="anonymous",
        rate_key="anonymous",
        scopes=frozenset({ADMIN_SCOPE}),
    )


def authenticate_key(session: Session, settings: Settings, secret: str) -> Principal:
    """The principal of an API key; Unauthorized if it is malformed, unknown, revoked or expired.

    Looked up in the database on every request (by display prefix, then a constant-time digest
    comparison), so a revocation takes effect at once on every replica.
    """
    if not keys.looks_like_key(secret):
        raise Unauthorized("The API key is not valid.", reason="malformed")
    digest = keys.digest_of(secret)
    now = utcnow()
    for key in repo.keys_with_prefix(session, keys.display_prefix(secret)):
        if not keys.digests_match(key.secret_hash, digest):
            continue
        if key.revoked_at is not None:
            raise Unauthorized("The API key has been revoked.", reason="revoked", key_id=key.id)
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthorized("The API key has expired.", reason="expired", key_id=key.id)
        resolution = timedelta(seconds=settings.auth.last_used_resolution_s)
        if key.last_used_at is None or key.last_used_at < now - resolution:
            # Checked here first: even an UPDATE that matches nothing takes SQLite's write lock.
            repo.touch_key(session, key.id, now, resolution)
        return Principal(
            tenant_id=key.tenant_id,
            tier=key.tier,
            subject=f"key:{key.id}",
            rate_key=key.id,
            scopes=frozenset(key.scopes or ()),
        )
    raise Unauthorized("The API key is not valid.", reason="unknown")


def ensure_token_tenant(session: Session, principal: Principal) -> None:
    """Give an OIDC token's tenant a row (its jobs and ledger refer to it) if it has none yet.

    Looked up on every request rather than remembered per process: a first request that rolls back takes
    the new row with it, and a remembered id would then point at nothing.
    """
    if repo.get_tenant(session, principal.tenant_id) is None:
        repo.ensure_tenant(session, principal.tenant_id, principal.tier)
