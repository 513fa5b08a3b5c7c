"""`pagemill submit`: documents sent to a running Pagemill server, followed live, results downloaded.

The options shared with `pagemill backfill` (the server, the key, the job options) are defined here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pagemill.cli.convert import _check_formats, check_page_range, parse_formats
from pagemill.jobs.options import JobOptions, OcrMode
from pagemill.settings import EngineName

DEFAULT_API_URL = "http://127.0.0.1:8000"

ApiUrl = Annotated[
    str,
    typer.Option(
        "--api", envvar="PAGEMILL_API_URL", help="The Pagemill server's base URL.", show_envvar=True
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="PAGEMILL_API_KEY",
        help="API key (pm_live_...); prefer the environment variable: a command line is visible to other "
        "users of the machine.",
        show_default=False,
        show_envvar=True,
    ),
]
Formats = Annotated[str, typer.Option(help="Comma-separated: markdown, text, json.", callback=_check_formats)]
Mode = Annotated[OcrMode, typer.Option(help="auto (text layer where usable, else OCR), text_layer or ocr.")]
Engine = Annotated[
    EngineName | None, typer.Option(help="OCR engine (default: the server's engines.default).")
]
PageRange = Annotated[
    str | None, typer.Option(help="Pages to read, e.g. 1-3,5,9- (default: all).", callback=check_page_range)
]
Password = Annotated[str | None, typer.Option(help="Password of encrypted PDFs.")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]


def job_options(formats: str, ocr_mode: OcrMode, engine: str | None, page_range: str | None) -> JobOptions:
    """The job options of the command line's options."""
    return JobOptions(formats=parse_formats(formats), page_range=page_range, ocr_mode=ocr_mode, engine=engine)


def submit(
    documents: Annotated[
        list[str],
        typer.Argument(
            help="Documents, folders (recursive; PDFs and images by their first bytes), quoted glob "
            "patterns, and http(s) URLs for the server to fetch.",
            show_default=False,
        ),
    ],
    api: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: beside each file; URLs: the current folder)."),
    ] = None,
    formats: Formats = "markdown,text,json",
    ocr_mode: Mode = OcrMode.AUTO,
    engine: Engine = None,
    page_range: PageRange = None,
    password: Password = None,
    parallel: Annotated[int, typer.Option(min=1, help="Documents in flight at once.")] = 4,
    force: Annotated[bool, typer.Option("--force", help="Submit documents whose results exist too.")] = False,
    wait: Annotated[
        bool,
        typer.Option(help="Follow each job to its end and download its results (--no-wait: submit only)."),
    ] = True,
    as_json: Json = False,
) -> None:
    """Submit documents to a running server, follow them live and download their results.

    Each job is followed on its event stream (polling where the server has events off); results are
    named as `pagemill convert` names them. A document whose results all exist is skipped (--force
    sends it again). 429 and 503 answers are retried after their Retry-After. Exit 1 when any document
    failed or was refused.
    """
    from rich.console import Console

    from pagemill.bulk.api_client import ApiClient
    from pagemill.bulk.display import print_summary
    from pagemill.bulk.inputs import InputProblem, collect_files, is_url
    from pagemill.bulk.submit import plan_items, submit_items

    urls = [document for document in documents if is_url(document)]
    try:
        inputs = collect_files([document for document in documents if not is_url(document)])
    except InputProblem as exc:
        raise typer.BadParameter(str(exc), param_hint="'DOCUMENTS...'") from None
    options = job_options(formats, ocr_mode, engine, page_range)
    console = Console(stderr=True)
    with ApiClient(api, key) as client:
        summary = submit_items(
            client,
            plan_items(inputs, urls, out),
            options=options,
            password=password,
            parallel=parallel,
            force=force,
            wait=wait,
            console=console,
            ignored=len(inputs.ignored),
        )
    print_summary(summary, console)
    if as_json:
        typer.echo(json.dumps(summary.to_json()))
    raise typer.Exit(code=summary.exit_code)
