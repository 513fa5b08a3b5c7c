"""`pagemill backfill`: a folder or an S3 prefix submitted through the API, filtered, rate-limited and
resumable from a checkpoint file."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer

from pagemill.cli.submit import (
    DEFAULT_API_URL,
    ApiKey,
    ApiUrl,
    Engine,
    Formats,
    Json,
    Mode,
    PageRange,
    Password,
    job_options,
)
from pagemill.jobs.options import OcrMode

T = TypeVar("T")


def _parse(parse: Callable[[str], T], value: str | None, option: str) -> T | None:
    """``parse(value)``, None for None; its ValueError is a usage error naming ``option`` (exit 2)."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None


def backfill(
    source: Annotated[
        str, typer.Option("--from", help="A folder, or s3://bucket/prefix.", show_default=False)
    ],
    api: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="JSON-lines file of what was sent (read, then appended to): a run after an interruption "
            "sends nothing twice and misses nothing. Without it, a re-run sends everything again (the "
            "server still replays identical submissions by their Idempotency-Key)."
        ),
    ] = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="Kinds to send, by file name: pdf, image, png, jpeg, tiff, webp (default: all of them).",
        ),
    ] = None,
    min_size: Annotated[str | None, typer.Option(help="Smallest file, e.g. 10k, 5MB, 1GiB.")] = None,
    max_size: Annotated[str | None, typer.Option(help="Largest file.")] = None,
    modified_since: Annotated[
        str | None,
        typer.Option(help="Modified at or after, e.g. 2024-01-01 or 2024-01-01T08:00:00Z."),
    ] = None,
    modified_until: Annotated[
        str | None, typer.Option(help="Modified before (UTC unless an offset is given).")
    ] = None,
    only_missing: Annotated[
        bool,
        typer.Option(
            "--only-missing",
            help="Leave out documents whose results are all in --out already (e.g. from an earlier run).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Download results here (OUT/<key>.md ...; implies --wait)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the jobs to their end and report how they ended.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be sent; send nothing.")
    ] = False,
    rate: Annotated[
        str | None,
        typer.Option(help="Most submissions per second, e.g. 5/s or 120/m (default: no limit)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Send at most this many documents in this run.")
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Uploads in flight at once.")] = 4,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="AWS_ENDPOINT_URL_S3", help="S3 endpoint (MinIO, ...); credentials: AWS_* variables."
        ),
    ] = None,
    formats: Formats = "markdown,text,json",
    ocr_mode: Mode = OcrMode.AUTO,
    engine: Engine = None,
    page_range: PageRange = None,
    password: Password = None,
    as_json: Json = False,
) -> None:
    """Submit a folder or S3 prefix through the API: filtered, rate-limited, resumable.

    Every document that passes the filters is submitted through the API (the tenant's quotas and rate
    limits apply), at most --rate per second, each submission recorded in --checkpoint.

    Ctrl-C (or SIGTERM) stops sending: uploads in flight finish and are recorded, the report is printed;
    run the same command again to go on. 429 answers are waited out (Retry-After); a quota exhausted, a
    refused key or an unreachable server stops the run. Exit 0 when everything was sent (and, waited
    for, succeeded); 1 when a document was refused, a job failed or the run stopped early; 130 when
    interrupted.
    """
    from rich.console import Console

    from pagemill.bulk.api_client import ApiClient
    from pagemill.bulk.backfill import (
        BackfillReport,
        BackfillRun,
        TokenBucket,
        parse_rate,
        plan_backfill,
        print_report,
        run_backfill,
    )
    from pagemill.bulk.checkpoint import Checkpoint
    from pagemill.bulk.sources import (
        Filters,
        SourceError,
        open_source,
        parse_size,
        parse_time,
        parse_types,
    )

    if only_missing and out is None:
        raise typer.BadParameter("--only-missing looks for results in --out: give --out too.")
    filters = Filters(
        kinds=_parse(parse_types, types, "--type"),
        min_size=_parse(parse_size, min_size, "--min-size"),
        max_size=_parse(parse_size, max_size, "--max-size"),
        modified_since=_parse(parse_time, modified_since, "--modified-since"),
        modified_until=_parse(parse_time, modified_until, "--modified-until"),
    )
    per_second = _parse(parse_rate, rate, "--rate")
    try:
        where = open_source(source, endpoint_url=endpoint_url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--from'") from None
    options = job_options(formats, ocr_mode, engine, page_range)
    console = Console(stderr=True)
    with Checkpoint(checkpoint, write=not dry_run) as done:
        if done.damaged_lines:
            console.print(f"checkpoint: {done.damaged_lines} damaged line(s) ignored (an interrupted write)")
        try:
            plan = plan_backfill(
                where.objects(),
                filters,
                done,
                out=out,
                only_missing=only_missing,
                options=options,
                limit=limit,
            )
        except SourceError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        report = BackfillReport(where.location, plan, dry_run=dry_run)
        if dry_run:
            for obj in plan.to_send:
                console.print(f"would send {obj.key} ({obj.size} bytes)", highlight=False, soft_wrap=True)
        else:
            stop = threading.Event()
            with ApiClient(api, key) as client, _stopping_on_signals(stop):
                run = BackfillRun(
                    source=where,
                    checkpoint=done,
                    client=client,
                    options=options,
                    password=password,
                    bucket=TokenBucket(per_second),
                    parallel=parallel,
                    console=console,
                    stop=stop,
                    out=out,
                    wait=wait,
                )
                run_backfill(run, report)
    print_report(report, console)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    raise typer.Exit(code=report.exit_code)


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop``: the run ends cleanly after the uploads in flight, with its report.
    A second one ends the command without the report (exit 130)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
