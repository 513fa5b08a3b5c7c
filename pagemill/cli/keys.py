"""`pagemill keys create|list|revoke` and `pagemill audit`: operator commands on the database directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from pagemill.cli.common import fail, print_rows, require_database, when
from pagemill.db import session_scope
from pagemill.errors import PagemillError
from pagemill.tenancy import audit, service
from pagemill.tenancy.principal import ADMIN_SCOPE, Actor
from pagemill.tenancy.schemas import AuditEventOut, KeyOut

keys_cli = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")


@keys_cli.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id (a lower-case slug); created if new.")],
    tier: Annotated[
        str | None, typer.Option(help="free, standard or enterprise (sets or moves the tenant's tier).")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Grant the admin scope.")] = False,
    expires_in_days: Annotated[
        float | None, typer.Option(help="Expire after this many days (default: never).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the secret).")] = False,
) -> None:
    """Create a key and print its secret: shown this once, only its SHA-256 is kept."""
    require_database()
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days is not None else None
    try:
        with session_scope() as session:
            key, secret = service.create_key(
                session,
                tenant_id=tenant,
                tier=tier,
                actor=Actor.cli(),
                name=name,
                scopes=[ADMIN_SCOPE] if admin else [],
                expires_at=expires_at,
            )
            out = KeyOut.from_key(key)
    except PagemillError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps({**out.model_dump(mode="json"), "secret": secret}))
        return
    typer.echo(f"key {out.id} for tenant {out.tenant} (store the secret now; it is not shown again):")
    typer.echo(secret)


@keys_cli.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List keys (never their secrets)."""
    require_database()
    with session_scope() as session:
        rows = [
            KeyOut.from_key(key)
            for key in service.list_keys(session, tenant_id=tenant, include_revoked=include_revoked)
        ]
    if as_json:
        for row in rows:
            typer.echo(row.model_dump_json())
        return
    # Ids are copied from here (to revoke a key) and prefixes recognise a key: both are never cut.
    print_rows(
        ["id", "tenant", "prefix", "name", "scopes", "created", "expires", "revoked", "last used"],
        [
            [
                row.id,
                row.tenant,
                row.prefix + "…",
                row.name or "-",
                ",".join(row.scopes) or "-",
                when(row.created_at),
                when(row.expires_at),
                when(row.revoked_at),
                when(row.last_used_at),
            ]
            for row in rows
        ],
        whole=3,
    )


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: refused from the next request on, on every replica."""
    require_database()
    try:
        with session_scope() as session:
            key = service.revoke_key(session, key_id, actor=Actor.cli())
            revoked_at = key.revoked_at
    except PagemillError as exc:
        raise fail(exc) from exc
    typer.echo(f"revoked {key_id} at {when(revoked_at)}")


def audit_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    action: Annotated[str | None, typer.Option(help=f"Only this action: {', '.join(audit.ACTIONS)}.")] = None,
    since_hours: Annotated[float | None, typer.Option(help="Only events of the last N hours.")] = None,
    limit: Annotated[int, typer.Option(help="Most events shown.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Read the audit log, newest first: key creation and revocation, job creation, cancels, result reads."""
    require_database()
    since = datetime.now(UTC) - timedelta(hours=since_hours) if since_hours else None
    with session_scope() as session:
        rows = [
            AuditEventOut.from_event(event)
            for event in audit.list_events(session, tenant_id=tenant, action=action, since=since, limit=limit)
        ]
    if as_json:
        for row in rows:
            typer.echo(row.model_dump_json())
        return
    print_rows(
        ["at", "action", "target", "tenant", "actor", "from", "request id"],
        [
            [
                when(row.at),
                row.action,
                row.target or "-",
                row.tenant or "-",
                row.actor,
                row.ip or "-",
                row.request_id or "-",
            ]
            for row in rows
        ],
        whole=3,
    )


def print_bootstrap_key(base_url: str) -> None:
    """`pagemill up`: on a fresh install, create an admin key for the default tenant and print it once,
    with a request to try it against the API at ``base_url``."""
    with session_scope() as session:
        secret = service.bootstrap_key(session)
    if secret is None:
        return
    typer.echo(
        "\n"
        "pagemill: created the first API key (default tenant, admin). It is shown only now; store it:\n\n"
        f"    {secret}\n\n"
        f"    curl -H 'Authorization: Bearer {secret}' {base_url}/api/v1/usage\n\n"
        "More keys: `pagemill keys create --tenant NAME` (from this folder; see README).\n"
    )
