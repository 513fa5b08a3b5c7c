"""`pagemill dead-letters list|show|replay`: work that spent its attempts, on the database directly.

Replays from here are audited as the operator running the command (``cli:<user>``) and send their tasks to
the configured broker; they are not rate limited (the API's bulk replay is), but bounded per call like it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from pagemill.cli.common import fail, print_rows, require_database, when
from pagemill.errors import PagemillError, ValidationFailed
from pagemill.models import DeadLetterCategory, DeadLetterState

dead_letters_cli = typer.Typer(no_args_is_help=True, help="List and replay dead letters.")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A point in time from ``--since``: ISO 8601 with a zone (``2026-11-30T08:00:00Z``; without one: UTC),
    or a duration back from now (``90m``, ``2h``, ``7d``). ValidationFailed otherwise."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(
            f"--since {value!r} is neither an ISO 8601 time nor a duration like 90m, 2h or 7d.", field="since"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except PagemillError as exc:
        raise fail(exc) from exc


SinceOption = Annotated[
    str | None,
    typer.Option(help="Only those whose last failure is since then: ISO 8601, or a duration (2h, 7d)."),
]
CategoryOption = Annotated[
    DeadLetterCategory | None, typer.Option(help="Only this category: decode, timeout, engine, crash, other.")
]
TenantOption = Annotated[str | None, typer.Option(help="Only this tenant's.")]


@dead_letters_cli.command("list")
def list_command(
    state: Annotated[
        DeadLetterState | None, typer.Option(help="Only open or only replayed ones (default: both).")
    ] = None,
    category: CategoryOption = None,
    tenant: TenantOption = None,
    job: Annotated[str | None, typer.Option(help="Only this job's.")] = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Most dead letters shown.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines (with tracebacks).")] = False,
) -> None:
    """List dead letters, newest failure first."""
    from pagemill.db import session_scope
    from pagemill.dead_letters import service
    from pagemill.dead_letters.schemas import DeadLetterDetail

    require_database()
    with session_scope() as session:
        rows, _ = service.list_dead_letters(
            session,
            limit=limit,
            cursor=None,
            state=state,
            category=category,
            tenant_id=tenant,
            job_id=job,
            since=_since(since),
        )
        out = [DeadLetterDetail.from_row(row) for row in rows]
    if as_json:
        for item in out:
            typer.echo(item.model_dump_json())
        return
    print_rows(
        ["id", "job", "category", "state", "error", "pages", "attempts", "failed", "replayed"],
        [
            [
                item.id,
                item.job_id,
                item.category.value,
                item.state.value,
                item.error.code,
                ",".join(map(str, item.pages)) or "-",
                str(item.attempts),
                when(item.failed_at),
                f"{when(item.replayed_at)} (x{item.replay_count})" if item.replay_count else "-",
            ]
            for item in out
        ],
        whole=2,
    )


@dead_letters_cli.command("show")
def show_command(dead_letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Print one dead letter as JSON, with the end of its traceback."""
    from pagemill.db import session_scope
    from pagemill.dead_letters import service
    from pagemill.dead_letters.schemas import DeadLetterDetail

    require_database()
    try:
        with session_scope() as session:
            out = DeadLetterDetail.from_row(service.get_dead_letter(session, dead_letter_id))
    except PagemillError as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(out.model_dump(mode="json"), indent=2))


@dead_letters_cli.command("replay")
def replay_command(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Dead letter ids to replay.", show_default=False)
    ] = None,
    category: CategoryOption = None,
    since: SinceOption = None,
    tenant: TenantOption = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="With --category: at most this many (dead_letters.bulk_replay_max)."),
    ] = None,
) -> None:
    """Run dead letters' work again with fresh attempts: by id, or every open one of a --category (since a
    time, of a tenant). Exit 2 when one could not be replayed."""
    from pagemill.db import session_scope
    from pagemill.dead_letters import service
    from pagemill.storage import get_blob_store
    from pagemill.tenancy.principal import Actor

    if bool(ids) == (category is not None):
        raise typer.BadParameter("give dead letter ids, or --category (not both)")
    if category is None and (since is not None or tenant is not None or limit is not None):
        raise typer.BadParameter("--since, --tenant and --limit go with --category")
    require_database()
    actor, store = Actor.cli(), get_blob_store()
    refused = 0
    if category is not None:
        with session_scope() as session:
            outcome = service.replay_category(
                session,
                store,
                category=category,
                actor=actor,
                since=_since(since),
                tenant_id=tenant,
                limit=limit,
            )
            replayed = [(row.id, row.job_id) for row in outcome.replayed]
        for row_id, job_id in replayed:
            typer.echo(f"replayed {row_id} (job {job_id})")
        for row_id, error in outcome.skipped:
            typer.echo(f"error: {row_id}: {error.code}: {error.message}", err=True)
        refused = len(outcome.skipped)
        typer.echo(f"{len(replayed)} replayed, {refused} refused, {max(0, outcome.remaining)} more open")
    for dead_letter_id in ids or []:
        try:
            # One transaction each: a dead letter that cannot be replayed leaves the others replayed.
            with session_scope() as session:
                job_id = service.replay(session, store, dead_letter_id, actor=actor).job_id
        except PagemillError as exc:
            typer.echo(f"error: {dead_letter_id}: {exc.code}: {exc.message}", err=True)
            refused += 1
            continue
        typer.echo(f"replayed {dead_letter_id} (job {job_id})")
    if refused:
        raise typer.Exit(code=2)
