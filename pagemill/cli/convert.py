"""`pagemill convert`: documents to text in this process (or N worker processes), without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pagemill.cli.common import fail
from pagemill.engines.audio_registry import AUDIO_ENGINE_NAMES, require_audio_configured
from pagemill.engines.registry import ENGINE_NAMES
from pagemill.errors import PagemillError
from pagemill.jobs.options import (
    AttachmentMode,
    OcrMode,
    OutputFormat,
    TableFormat,
    TimestampStyle,
    check_engine_name,
    validate_page_range,
)


def _check_engine(value: str | None) -> str | None:
    try:
        return check_engine_name(value)
    except PagemillError as exc:
        raise typer.BadParameter(exc.message) from None


def _check_formats(value: str) -> str:
    parse_formats(value)
    return value


def parse_formats(value: str) -> list[OutputFormat]:
    """``markdown,text`` -> formats; a bad name is a usage error (exit 2), not a traceback."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    allowed = [fmt.value for fmt in OutputFormat]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise typer.BadParameter(
            f"{', '.join(map(repr, unknown)) or 'nothing'} is not a format; choose from {', '.join(allowed)} "
            "(comma-separated)."
        )
    return [OutputFormat(name) for name in dict.fromkeys(names)]


def check_page_range(value: str | None) -> str | None:
    """A page range such as ``1-3,5,9-``; a malformed one is a usage error (exit 2)."""
    try:
        return validate_page_range(value)
    except PagemillError as exc:
        raise typer.BadParameter(exc.message) from None


def convert(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Documents, folders (walked recursively; only the files of a supported type, recognised by "
            "their content) and glob patterns (quote them: 'scans/**/*.pdf').",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: beside each file); a folder's tree is mirrored under it."),
    ] = None,
    formats: Annotated[
        str, typer.Option(help="Comma-separated: markdown, text, json.", callback=_check_formats)
    ] = "markdown,text,json",
    ocr_mode: Annotated[
        OcrMode, typer.Option(help="auto (text layer where usable, else OCR), text_layer or ocr.")
    ] = OcrMode.AUTO,
    engine: Annotated[
        str | None,
        typer.Option(
            help="OCR engine: tesseract, rapidocr, vllm, remote-openai (default: engines.default); for "
            "recordings, speech engine: faster-whisper, whisper-vllm, remote-openai (default: "
            "audio.default_engine). Server engines need their base_url set "
            "(PAGEMILL_ENGINES__VLLM__BASE_URL, PAGEMILL_AUDIO__WHISPER_VLLM__BASE_URL, ...).",
            callback=_check_engine,
        ),
    ] = None,
    page_range: Annotated[
        str | None,
        typer.Option(help="Pages to read, e.g. 1-3,5,9- (default: all).", callback=check_page_range),
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Password of encrypted PDFs and password-protected DOCX/XLSX/PPTX.")
    ] = None,
    speaker_notes: Annotated[
        bool,
        typer.Option("--speaker-notes/--no-speaker-notes", help="Slides: speaker notes under each slide."),
    ] = True,
    formulas: Annotated[
        bool, typer.Option("--formulas", help="Sheets: formula cells show their formulas, not their values.")
    ] = False,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Read hidden sheets and slides too (flagged hidden).")
    ] = False,
    table_format: Annotated[
        TableFormat,
        typer.Option(help="Office tables in markdown: markdown, html, or auto (html where markdown cannot)."),
    ] = TableFormat.MARKDOWN,
    attachments: Annotated[
        AttachmentMode, typer.Option(help="E-mail attachments: list, or convert (office and text types).")
    ] = AttachmentMode.LIST,
    language: Annotated[
        str | None, typer.Option(help="Recordings: the spoken language (e.g. en); detected when not given.")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Recordings: text that comes before (names, terms) to guide them.")
    ] = None,
    word_timestamps: Annotated[
        bool, typer.Option("--word-timestamps", help="Recordings: time every word (in the JSON).")
    ] = False,
    timestamps: Annotated[
        TimestampStyle, typer.Option(help="Recordings' markdown: a heading per piece, or inline times.")
    ] = TimestampStyle.HEADINGS,
    parallel: Annotated[
        int, typer.Option(min=1, help="Documents converted at once, each in its own process.")
    ] = 1,
    force: Annotated[
        bool, typer.Option("--force", help="Convert documents whose results exist too.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout (progress stays on stderr).")
    ] = False,
) -> None:
    """Convert documents in this process, without a server; writes .md, .txt and .json files.

    Each file's results are named after it (report.pdf -> report.md). When two files would get the same
    names in one folder (a.png and a.jpg), both keep their extension instead (a.png.md, a.jpg.md).
    A document whose results all exist is skipped (--force redoes it). Exit 1 when any document failed
    (a document with some failed pages has results: they say which).
    """
    from rich.console import Console

    from pagemill.bulk.display import print_summary
    from pagemill.bulk.inputs import InputProblem, collect_files
    from pagemill.convert import convert_inputs
    from pagemill.engines.registry import require_configured
    from pagemill.jobs.options import JobOptions
    from pagemill.settings import get_settings

    if engine is not None:
        try:
            if engine in AUDIO_ENGINE_NAMES and engine not in ENGINE_NAMES:
                require_audio_configured([engine], get_settings())
            else:
                require_configured([engine], get_settings())
        except PagemillError as exc:
            raise fail(exc) from None
    try:
        inputs = collect_files(files)
    except InputProblem as exc:
        raise typer.BadParameter(str(exc), param_hint="'FILES...'") from None
    options = JobOptions(
        formats=parse_formats(formats),
        page_range=page_range,
        ocr_mode=ocr_mode,
        engine=engine,
        speaker_notes=speaker_notes,
        formulas=formulas,
        hidden=hidden,
        table_format=table_format,
        attachments=attachments,
        language=language,
        prompt=prompt,
        word_timestamps=word_timestamps,
        timestamps=timestamps,
    )
    console = Console(stderr=True)
    summary = convert_inputs(
        inputs, out=out, options=options, password=password, parallel=parallel, force=force, console=console
    )
    print_summary(summary, console)
    if as_json:
        typer.echo(json.dumps(summary.to_json()))
    raise typer.Exit(code=summary.exit_code)
