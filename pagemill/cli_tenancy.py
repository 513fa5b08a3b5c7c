"""`pagemill keys create|list|revoke` and `pagemill audit`: operator commands on the database directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pagemill.db import session_scope
from pagemill.errors import PagemillError
from pagemill.tenancy import audit, service
from pagemill.tenancy.principal import ADMIN_SCOPE, Actor
from pagemill.tenancy.schemas import AuditEventOut, KeyOut

keys_cli = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")


def _fail(exc: PagemillError) -> typer.Exit:
    typer.echo(f"error: {exc.code}: {exc.message}", err=True)
    return typer.Exit(code=2)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


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
        raise _fail(exc) from exc
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
    with session_scope() as session:
        rows = [
            KeyOut.from_key(key)
            for key in service.list_keys(session, tenant_id=tenant, include_revoked=include_revoked)
        ]
    if as_json:
        for row in rows:
            typer.echo(row.model_dump_json())
        return
    table = Table()
    # Ids and prefixes are copied from here (to revoke a key): never wrapped or cut, even when piped.
    table.add_column("id", no_wrap=True, min_width=20)
    table.add_column("tenant", no_wrap=True)
    table.add_column("prefix", no_wrap=True, min_width=17)
    for title in ("name", "scopes", "created", "expires", "revoked", "last used"):
        table.add_column(title)
    for row in rows:
        table.add_row(
            row.id,
            row.tenant,
            row.prefix + "…",
            row.name,
            ",".join(row.scopes),
            _when(row.created_at),
            _when(row.expires_at),
            _when(row.revoked_at),
            _when(row.last_used_at),
        )
    Console().print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: refused from the next request on, on every replica."""
    try:
        with session_scope() as session:
            key = service.revoke_key(session, key_id, actor=Actor.cli())
            revoked_at = key.revoked_at
    except PagemillError as exc:
        raise _fail(exc) from exc
    typer.echo(f"revoked {key_id} at {_when(revoked_at)}")


def audit_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    action: Annotated[str | None, typer.Option(help=f"Only this action: {', '.join(audit.ACTIONS)}.")] = None,
    since_hours: Annotated[float | None, typer.Option(help="Only events of the last N hours.")] = None,
    limit: Annotated[int, typer.Option(help="Most events shown.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Read the audit log, newest first: key creation and revocation, job creation, cancels, result reads."""
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
    table = Table()
    table.add_column("at")
    table.add_column("tenant", no_wrap=True)
    table.add_column("actor", no_wrap=True, min_width=24)
    table.add_column("action", no_wrap=True)
    table.add_column("target", no_wrap=True, min_width=36)
    for title in ("from", "request id"):
        table.add_column(title)
    for row in rows:
        table.add_row(
            _when(row.at),
            row.tenant or "-",
            row.actor,
            row.action,
            row.target or "-",
            row.ip or "-",
            row.request_id or "-",
        )
    Console().print(table)


def print_bootstrap_key() -> None:
    """`pagemill up`: on a fresh install, create an admin key for the default tenant and print it once."""
    with session_scope() as session:
        secret = service.bootstrap_key(session)
    if secret is None:
        return
    typer.echo(
        "\n"
        "pagemill: created the first API key (default tenant, admin). It is shown only now; store it:\n\n"
        f"    {secret}\n\n"
        f"    curl -H 'Authorization: Bearer {secret}' http://HOST:PORT/api/v1/usage\n\n"
        "More keys: `pagemill keys create --tenant NAME`.\n"
    )
