"""`pagemill convert`: documents to text in this process, without a server or a database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pagemill.cli.common import fail
from pagemill.errors import PagemillError
from pagemill.jobs.options import OcrMode, OutputFormat
from pagemill.settings import EngineName


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


def convert(
    files: Annotated[list[Path], typer.Argument(help="Documents to convert.", exists=True, dir_okay=False)],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: beside each file).")] = None,
    formats: Annotated[
        str, typer.Option(help="Comma-separated: markdown, text, json.", callback=_check_formats)
    ] = "markdown,text,json",
    ocr_mode: Annotated[
        OcrMode, typer.Option(help="auto (text layer where usable, else OCR), text_layer or ocr.")
    ] = OcrMode.AUTO,
    engine: Annotated[
        EngineName | None,
        typer.Option(
            help="OCR engine (default: engines.default). vllm and remote-openai need their server's "
            "base_url set (PAGEMILL_ENGINES__VLLM__BASE_URL, ...).",
        ),
    ] = None,
    password: Annotated[str | None, typer.Option(help="Password of encrypted PDFs.")] = None,
) -> None:
    """Convert documents in this process, without a server; writes .md, .txt and .json files.

    Each file's results are named after it (report.pdf -> report.md). When two files would get the same
    names in one folder (a.png and a.jpg), both keep their extension instead (a.png.md, a.jpg.md).
    """
    from pagemill.convert import convert_files
    from pagemill.engines.registry import require_configured
    from pagemill.settings import get_settings

    if engine is not None:
        try:
            require_configured([engine], get_settings())
        except PagemillError as exc:
            raise fail(exc) from None
    failures = convert_files(
        files, out=out, formats=parse_formats(formats), ocr_mode=ocr_mode, engine=engine, password=password
    )
    raise typer.Exit(code=1 if failures else 0)
