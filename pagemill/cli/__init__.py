"""The `pagemill` command: up, api, worker, migrate, convert, submit, backfill, config, keys, audit,
dead-letters.

Commands live by role: :mod:`.serve` (up, api, worker, migrate), :mod:`.convert`, :mod:`.submit`,
:mod:`.backfill` (bulk work: :mod:`pagemill.bulk`), :mod:`.config`,
:mod:`.keys` (keys and audit), :mod:`.dead_letters`. :func:`main` turns usage mistakes into one line on
stderr and exit 2.
"""

from __future__ import annotations

import os
import sys
import tomllib
from typing import Annotated

import typer
from pydantic import ValidationError

from pagemill import __version__
from pagemill.cli.backfill import backfill
from pagemill.cli.config import config_cli
from pagemill.cli.convert import convert
from pagemill.cli.dead_letters import dead_letters_cli
from pagemill.cli.keys import audit_command, keys_cli
from pagemill.cli.serve import api, migrate, up, worker
from pagemill.cli.submit import submit

cli = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Pagemill: documents in, text out.",
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"pagemill {__version__}")
        raise typer.Exit()


# Commands that run a service or change the database: their INFO lines are the record of what they did.
# The others (keys, config, convert, ...) answer on stdout/stderr themselves; their logs show warnings up.
_SERVICE_COMMANDS = frozenset({"up", "api", "worker", "migrate"})


@cli.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Pagemill: documents in, text out."""
    _configure_logging(ctx.invoked_subcommand)


def _configure_logging(command: str | None) -> None:
    """The commands' log lines (migrations, key lookups, `up`'s supervisor) in the one format of API and
    workers (pagemill.logging); warnings and errors only for commands that are not services."""
    import logging

    from pagemill.logging import configure_logging
    from pagemill.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError:
        return  # the command itself reports invalid settings, naming each (see main)
    configure_logging(settings)
    if command not in _SERVICE_COMMANDS:
        root = logging.getLogger()
        root.setLevel(max(root.level, logging.WARNING))


cli.command()(migrate)
cli.command()(api)
cli.command()(worker)
cli.command()(up)
cli.command()(convert)
cli.command()(submit)
cli.command()(backfill)
cli.add_typer(config_cli, name="config")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(dead_letters_cli, name="dead-letters")
cli.command("audit")(audit_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pagemill` script.

    Click would print a usage block and rich panels for a bad option value; an operator (or a script)
    gets one line instead: ``pagemill convert: Invalid value for '--formats': ...``, exit 2.
    """
    command = typer.main.get_command(cli)
    try:
        code = command.main(args=argv, prog_name="pagemill", standalone_mode=False)
    except typer.TyperException as exc:  # Click's errors (typer vendors Click): usage, bad values
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `pagemill keys` alone: the help, as asked
            typer.echo(exc.format_message())
            sys.exit(0)
        where = context.command_path if context is not None else "pagemill"
        hint = f" (see {where} --help)" if context is not None else ""
        message = " ".join(exc.format_message().replace("Value error, ", "").split())
        typer.echo(f"{where}: {message}{hint}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("pagemill: aborted", err=True)
        sys.exit(130)
    except (
        ValidationError
    ) as exc:  # the settings (environment, TOML file) are invalid: say which, no traceback
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            variable = "PAGEMILL_" + "__".join(str(part) for part in error["loc"]).upper()
            typer.echo(f"pagemill: invalid setting {name} ({variable}): {error['msg']}", err=True)
        sys.exit(2)
    except tomllib.TOMLDecodeError as exc:  # the file PAGEMILL_CONFIG_FILE names does not parse
        where = os.environ.get("PAGEMILL_CONFIG_FILE", "the configuration file")
        typer.echo(f"pagemill: {where} (PAGEMILL_CONFIG_FILE) is not valid TOML: {exc}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
