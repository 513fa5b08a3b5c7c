"""The `pagemill` command: up, api, worker, migrate, convert, config, keys, audit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from pagemill.cli_tenancy import audit_command, keys_cli, print_bootstrap_key
from pagemill.settings import Settings, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Pagemill: documents in, text out.")
config_cli = typer.Typer(no_args_is_help=True, help="Show and check settings.")
cli.add_typer(config_cli, name="config")
cli.add_typer(keys_cli, name="keys")
cli.command("audit")(audit_command)


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (run once per deploy, before the API and workers)."""
    from pagemill.migrate import upgrade_to_head

    upgrade_to_head()
    typer.echo("database is up to date")


@cli.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port).")] = None,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API (distributed mode: one of N replicas)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
        # Client address and https scheme from trusted proxies: audit log addresses and HSTS need them.
        proxy_headers=True,
        # The API writes its own access log, with request ids and tenants (api.middleware).
        access_log=False,
        forwarded_allow_ips=settings.api.forwarded_allow_ips,
    )


@cli.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: ingest, cpu, gpu.")] = "ingest,cpu",
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Processes (prefork) or threads. Default: CPU count; gpu-only: requests_in_flight."
        ),
    ] = None,
    pool: Annotated[
        str | None, typer.Option(help="prefork or threads. Default: threads for a gpu-only worker.")
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker consuming the given queues.

    A gpu-only worker calls model servers: it runs page tasks in threads, many in flight (pdfium calls are
    serialised by a lock; the model server does the heavy work), and waits until its engine's server
    answers with the model loaded before it takes any work.
    """
    settings = get_settings()
    names = {name.strip() for name in queues.split(",") if name.strip()}
    gpu_only = names == {"gpu"}
    argv = ["worker", "--queues", queues, "--loglevel", settings.log_level]
    argv += ["--without-gossip", "--without-mingle", "--pool", pool or ("threads" if gpu_only else "prefork")]
    chosen = concurrency or (
        settings.engines.vllm.requests_in_flight if gpu_only else settings.worker.concurrency
    )
    if chosen:
        argv += ["--concurrency", str(chosen)]
    if settings.worker.metrics_port:
        # Before any process imports prometheus_client: each pool process then writes its own file here.
        import tempfile

        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pagemill-metrics-"))
    if "gpu" in names:
        _wait_for_model_servers(settings)
    from workers.celery_app import app  # after PROMETHEUS_MULTIPROC_DIR is set

    if hostname:
        argv += ["--hostname", hostname]
    app.worker_main(argv)


def _wait_for_model_servers(settings: Settings) -> None:
    """Block until every configured model-server engine of the chain answers with its model loaded."""
    import time

    from pagemill.engines.registry import MODEL_ENGINES, engine_healthy
    from pagemill.jobs.reading import configured_engines

    for name in [name for name in configured_engines(settings) if name in MODEL_ENGINES]:
        announced = False
        while not engine_healthy(name, settings):
            if not announced:
                typer.echo(f"waiting for engine {name}'s server to serve its model ...", err=True)
                announced = True
            time.sleep(2.0)
        typer.echo(f"engine {name} is ready", err=True)


@cli.command()
def up(
    host: Annotated[str | None, typer.Option(help="Bind address (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port).")] = None,
) -> None:
    """Run everything in one command on embedded defaults: migrate, start a worker, serve the API."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from pagemill.migrate import upgrade_to_head

    upgrade_to_head()
    if settings.auth.enabled and settings.auth.bootstrap_key:
        print_bootstrap_key()
    worker_proc = subprocess.Popen(
        [sys.executable, "-m", "pagemill", "worker", "--queues", "ingest,cpu,gpu"],
        env=os.environ.copy(),
    )
    typer.echo(
        f"pagemill: data in {settings.data_dir.resolve()}, API on "
        f"http://{host or settings.api.host}:{port or settings.api.port}/api/v1/docs"
    )
    try:
        api(host=host, port=port, workers=1)
    finally:
        worker_proc.send_signal(signal.SIGTERM)
        try:
            worker_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_proc.kill()


@cli.command()
def convert(
    files: Annotated[list[Path], typer.Argument(help="Documents to convert.", exists=True, dir_okay=False)],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: beside each file).")] = None,
    formats: Annotated[
        str, typer.Option(help="Comma-separated: markdown, text, json.")
    ] = "markdown,text,json",
    ocr_mode: Annotated[str, typer.Option(help="auto, text_layer or ocr.")] = "auto",
    engine: Annotated[str | None, typer.Option(help="tesseract or rapidocr.")] = None,
    password: Annotated[str | None, typer.Option(help="Password of encrypted PDFs.")] = None,
) -> None:
    """Convert documents in this process, without a server; writes .md, .txt and .json files."""
    from pagemill.convert import convert_files

    failures = convert_files(
        files, out=out, formats=formats, ocr_mode=ocr_mode, engine=engine, password=password
    )
    raise typer.Exit(code=1 if failures else 0)


@config_cli.command("show")
def config_show() -> None:
    """Print the settings in force (secrets masked)."""
    typer.echo(json.dumps(get_settings().public_dict(), indent=2))


@config_cli.command("check")
def config_check() -> None:
    """Validate the settings and test the database, broker and blob store connections."""
    from api.routes.health import ready

    response = ready()
    body = json.loads(bytes(response.body))
    for name, state in body["checks"].items():
        typer.echo(f"{name:10} {state}")
    raise typer.Exit(code=0 if response.status_code == 200 else 1)


def main() -> None:
    """Entry point of the `pagemill` script."""
    cli()
