"""`pagemill config show|check`: the settings in force, and whether what they point at answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from pagemill.settings import Settings, get_settings

if TYPE_CHECKING:
    from pagemill.cli.config_checks import Finding

config_cli = typer.Typer(no_args_is_help=True, help="Show and check settings.")


def effective_settings(settings: Settings) -> dict[str, object]:
    """The settings with secrets masked, and the paths and URLs that default to the data dir filled in
    with what is in force (absolute), so nothing that has a default prints as null."""
    from sqlalchemy.engine import make_url

    from pagemill.migrate import masked_database_url

    data = settings.public_dict()
    data["data_dir"] = str(settings.data_dir.resolve())
    data["database"]["url"] = masked_database_url(settings)
    data["broker"]["url"] = make_url(settings.broker_url).render_as_string(hide_password=True)
    if settings.storage.backend == "local":
        data["storage"]["local_path"] = str(settings.blob_path)
    return data


@config_cli.command("show")
def config_show() -> None:
    """Print the settings in force (secrets masked; default paths and URLs resolved)."""
    typer.echo(json.dumps(effective_settings(get_settings()), indent=2))


@config_cli.command("check")
def config_check(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Check this TOML file (as PAGEMILL_CONFIG_FILE would name it) with the environment.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Validate the settings (TOML file and environment) and test each connection they name.

    The file's keys and the PAGEMILL_* variables must name settings; then the database (and its schema),
    broker, blob store and each engine of the OCR chain are tried, each with its latency. Exit 1 when
    anything failed; exit 2 when a setting's value is invalid (each is named).
    """
    import os
    import sys

    from pagemill.cli.config_checks import (
        Finding,
        broker_check,
        database_check,
        engine_check,
        environment_findings,
        file_findings,
        storage_check,
        timed,
    )
    from pagemill.jobs.reading import configured_engines
    from pagemill.migrate import missing_database

    if file is not None and os.environ.get("PAGEMILL_CONFIG_FILE") != str(file.resolve()):
        # Settings read PAGEMILL_CONFIG_FILE when they are first imported, as every service does: check the
        # file by running this check again with it named there, so it is loaded exactly as they load it.
        os.environ["PAGEMILL_CONFIG_FILE"] = str(file.resolve())
        os.execv(sys.executable, [sys.executable, "-m", "pagemill", "config", "check"])  # noqa: S606
    findings: list[Finding] = []
    if os.environ.get("PAGEMILL_CONFIG_FILE"):
        found, loads = file_findings(Path(os.environ["PAGEMILL_CONFIG_FILE"]))
        findings += found
        if not loads:
            _report(findings)
    findings += environment_findings(dict(os.environ))
    settings = get_settings()  # invalid values: one line each, exit 2 (pagemill.cli.main)
    findings.append(Finding("settings", True, "valid"))
    for finding in findings:
        typer.echo(finding.line())
    if settings.is_embedded:
        typer.echo(f"{'data_dir':10} {settings.data_dir.resolve()}")
    missing = missing_database(settings)
    if missing is not None:
        # Checking the broker and blob store would create an empty data dir here: stop at the reason.
        typer.echo(f"{'database':10} missing: {missing.message}")
        raise typer.Exit(code=1)
    checks = [
        timed("database", database_check(settings)),
        timed("broker", broker_check(settings)),
        timed("storage", storage_check(settings)),
    ]
    for finding in checks:
        typer.echo(finding.line())
    for name in configured_engines(settings):
        checks.append(timed(name, engine_check(name, settings)))
        typer.echo(checks[-1].line())
    _report([*findings, *checks], echo=False)


def _report(findings: list[Finding], *, echo: bool = True) -> NoReturn:
    """Print the findings (unless printed already) and a last line; exit 1 when any failed."""
    if echo:
        for finding in findings:
            typer.echo(finding.line())
    failed = [finding for finding in findings if not finding.ok]
    typer.echo(f"{'result':10} " + (f"{len(failed)} problem(s)" if failed else "all checks passed"))
    raise typer.Exit(code=1 if failed else 0)
