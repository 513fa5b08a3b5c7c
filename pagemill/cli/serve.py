"""`pagemill migrate`, `api`, `worker` and `up`: the long-running processes and the step before them."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from pagemill.settings import Settings, get_settings

log = logging.getLogger(__name__)


def migrate() -> None:
    """Bring the database schema up to date (run once per deploy, before the API and workers)."""
    from pagemill.migrate import upgrade_to_head

    upgrade_to_head()
    typer.echo("database is up to date")


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port).")] = None,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API (distributed mode: one of N replicas).

    SIGTERM: uvicorn stops accepting, lets requests in flight finish (up to 30 s), then exits.
    """
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # No handlers of uvicorn's own: its lines reach the root logger's, in the one format
        # (pagemill.logging, configured by the CLI here and by create_app in each server process).
        log_config=None,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=settings.api.keep_alive_s,
        # Client address and https scheme from trusted proxies: audit log addresses and HSTS need them.
        proxy_headers=True,
        # The API writes its own access log, with request ids and tenants (api.middleware).
        access_log=False,
        forwarded_allow_ips=settings.api.forwarded_allow_ips,
        # Requests the server refuses itself (too long a URL, unparsable) get the one error body too.
        http="api.http_protocol:ErrorBodyHttpToolsProtocol",
        # Job WebSockets (api.routes.events): a ping frame as often as SSE streams send their heartbeat.
        ws_ping_interval=settings.events.stream_heartbeat_s,
    )


def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues: ingest, cpu, gpu, webhooks.")
    ] = "ingest,cpu",
    concurrency: Annotated[
        int | None,
        typer.Option(help="Processes (prefork) or threads. Default: CPU count; gpu-only: see docs/gpu.md."),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option(help="prefork or threads. Default: threads for a gpu-only or webhooks-only worker."),
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker consuming the given queues.

    A gpu-only worker calls model servers: it runs page tasks in threads, many in flight (pages are
    rendered and encoded by its render processes, worker.render_processes), and waits until its engine's
    server answers with the model loaded before it takes any work. A webhooks-only worker (the event relay
    and webhook deliveries: network waits, never behind page work) runs webhooks.worker_threads threads.

    SIGTERM: a warm shutdown (no new tasks; running ones finish) of at most worker.shutdown_timeout_s,
    then a cold one (unfinished tasks go back to the queue).
    """
    settings = get_settings()
    names = {name.strip() for name in queues.split(",") if name.strip()}
    gpu_only = names == {"gpu"}
    webhooks_only = names == {"webhooks"}
    argv = ["worker", "--queues", queues, "--loglevel", settings.log_level]
    pool = pool or ("threads" if gpu_only or webhooks_only else "prefork")
    argv += ["--without-gossip", "--without-mingle", "--pool", pool]
    chosen = concurrency or (None if gpu_only else settings.worker.concurrency)
    if webhooks_only:
        chosen = concurrency or settings.webhooks.worker_threads
    if settings.worker.metrics_port:
        # Before any process imports prometheus_client: each pool process then writes its own file here.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pagemill-metrics-"))
    if gpu_only:
        # Only a pure GPU pool waits: a worker that also serves ingest and cpu (`pagemill up`) must start
        # (and run its sweeper) with the model server down, or no job would ever move or end.
        _wait_for_model_servers(settings)
    if gpu_only:
        from pagemill.engines.capacity import decide_requests_in_flight

        # After the wait: a busy server's /metrics tells how many requests it runs at once.
        choice = decide_requests_in_flight(settings.engines.vllm, concurrency=concurrency)
        typer.echo(f"GPU worker: {choice.describe()}", err=True)
        chosen = choice.requests
    if chosen:
        argv += ["--concurrency", str(chosen)]
    if pool == "threads" and names & {"cpu", "gpu"}:
        from pagemill.documents.render_pool import start_render_pool

        # Threads share one pdfium lock and one GIL: pages for model engines are rendered in processes.
        start_render_pool(settings.worker.render_processes, settings.limits)
    from pagemill.cli.supervise import bound_warm_shutdown
    from workers.celery_app import app  # after PROMETHEUS_MULTIPROC_DIR is set

    if hostname:
        argv += ["--hostname", hostname]
    bound_warm_shutdown(settings.worker.shutdown_timeout_s)
    lower_cpu_priority(settings.worker.nice)
    app.worker_main(argv)


def lower_cpu_priority(niceness: int) -> None:
    """Run this process (and the pool processes and engines it starts, which inherit it) at ``niceness`` at
    least; a process already nicer is left as it is (lowering niceness needs privileges).

    A session leader (as `pagemill up` and most supervisors start the worker) also lowers its session's
    autogroup: with Linux's autogroup on (the default of Debian's and Ubuntu's kernels), the scheduler first
    shares the CPU fairly between sessions, and niceness counts only within one: a worker at nice 10 in a
    session of its own took as much CPU as the API beside it (docs/benchmarks.md, "API load, 2026-12-01").
    Not done for a process sharing its session (started from a shell): that would lower the shell and
    whatever else runs in it."""
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)
    if os.getsid(0) == os.getpid():
        _lower_autogroup(niceness)


AUTOGROUP = Path("/proc/self/autogroup")


def _lower_autogroup(niceness: int) -> None:
    """Set this session's autogroup nice value to ``niceness`` unless it is nicer already; nothing where the
    kernel has no autogroups (the file is missing) or refuses."""
    try:
        # "/autogroup-85 nice 0"
        current = int(AUTOGROUP.read_text().split()[-1])
        if niceness > current:
            AUTOGROUP.write_text(str(niceness))
    except (OSError, ValueError, IndexError):
        log.debug("autogroup niceness not set", exc_info=True)


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


def base_url(host: str, port: int) -> str:
    """The URL to reach a server bound to ``host``: a wildcard bind is reached on the loopback address."""
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"


def up(
    host: Annotated[str | None, typer.Option(help="Bind address (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port).")] = None,
) -> None:
    """Run everything in one command on embedded defaults: migrate, start the workers (pages; events and
    webhooks), serve the API.

    SIGTERM or Ctrl-C stops the API and the worker warmly; whatever is left after
    worker.shutdown_timeout_s (plus the API's 30 s grace, whichever is longer) and 5 s is killed.
    """
    from pagemill.cli.keys import print_bootstrap_key
    from pagemill.cli.supervise import spawn, supervise
    from pagemill.migrate import upgrade_to_head

    settings = get_settings()
    host, port = host or settings.api.host, port or settings.api.port
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head()
    url = base_url(host, port)
    if settings.auth.enabled and settings.auth.bootstrap_key:
        print_bootstrap_key(url)
    data_dir = settings.data_dir.resolve()
    typer.echo(
        f"pagemill: data in {data_dir}, API on {url}/api/v1/docs\n"
        f"pagemill: other commands (pagemill keys, audit, config check) use this data from this folder, "
        f"or from anywhere with PAGEMILL_DATA_DIR={data_dir}"
    )
    # One place to scrape: the API and both workers write their metrics to one multiprocess folder, and the
    # API's /metrics serves the sum (pagemill.observability.collector). A fresh folder per run.
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="pagemill-metrics-")
    # Children get the resolved data dir: what they read cannot depend on a later change of folder.
    env = {**os.environ, "PAGEMILL_DATA_DIR": str(data_dir), "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    commands = {
        "worker": ["worker", "--queues", "ingest,cpu,gpu"],
        # Its own process: deliveries wait on receivers, and must never wait behind page work.
        "worker-webhooks": ["worker", "--queues", "webhooks", "--hostname", "webhooks@%h"],
        "api": ["api", "--host", host, "--port", str(port)],
    }
    children = {name: spawn(args, env) for name, args in commands.items()}
    stop_timeout_s = max(settings.worker.shutdown_timeout_s, 30) + 5
    # A worker that exits on its own (its pool wedged, the OOM killer) is started again; pages it held
    # are claimed in the database and offered again, so nothing is lost.
    restart = {name: _respawn(commands[name], env) for name in ("worker", "worker-webhooks")}
    try:
        code = supervise(children, stop_timeout_s, restart)
    finally:
        if metrics_dir != os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            shutil.rmtree(metrics_dir, ignore_errors=True)
    raise typer.Exit(code=code)


def _respawn(args: list[str], env: dict[str, str]) -> Callable[[], subprocess.Popen[bytes]]:
    """A function that starts ``pagemill ARGS`` again (for the supervisor's restarts)."""
    from pagemill.cli.supervise import spawn

    return lambda: spawn(args, env)
