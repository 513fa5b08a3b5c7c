"""`pagemill config show|check`: the settings in force, and whether what they point at answers."""

from __future__ import annotations

import json

import typer

from pagemill.settings import Settings, get_settings

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
def config_check() -> None:
    """Validate the settings and test the database (and its schema), broker and blob store."""
    from pagemill.migrate import missing_database

    settings = get_settings()
    if settings.is_embedded:
        typer.echo(f"{'data_dir':10} {settings.data_dir.resolve()}")
    missing = missing_database(settings)
    if missing is not None:
        # Checking the broker and blob store would create an empty data dir here: stop at the reason.
        typer.echo(f"{'database':10} missing: {missing.message}")
        raise typer.Exit(code=1)
    from api.routes.health import ready

    response = ready()
    body = json.loads(bytes(response.body))
    # The database check includes the schema: "not migrated" names `pagemill migrate`.
    for name, state in body["checks"].items():
        typer.echo(f"{name:10} {state}")
    raise typer.Exit(code=0 if response.status_code == 200 else 1)
