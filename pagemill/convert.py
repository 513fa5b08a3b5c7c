"""In-process conversion for `pagemill convert`: the same readers as the workers, no server or database."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pagemill.documents.kinds import SNIFF_BYTES, DocumentKind, sniff
from pagemill.documents.probe import probe_document
from pagemill.documents.source import open_source
from pagemill.errors import PagemillError
from pagemill.jobs import reading
from pagemill.jobs.options import JobOptions, OcrMode, OutputFormat
from pagemill.jobs.results import write_results
from pagemill.models import Job, Page, PageState
from pagemill.settings import get_settings

_SUFFIX = {OutputFormat.MARKDOWN: ".md", OutputFormat.TEXT: ".txt", OutputFormat.JSON: ".json"}


def convert_files(
    files: list[Path],
    *,
    out: Path | None,
    formats: str,
    ocr_mode: str,
    engine: str | None,
    password: str | None,
) -> int:
    """Convert each file, print a line per file; returns how many failed."""
    options = JobOptions(
        formats=[OutputFormat(f.strip()) for f in formats.split(",") if f.strip()],
        ocr_mode=OcrMode(ocr_mode),
        engine=engine,
    )
    console = Console(stderr=True)
    failures = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for path in files:
            try:
                written = _convert_one(path, out, options, password, progress)
                console.print(f"[green]ok[/] {path} -> {', '.join(str(p) for p in written)}")
            except PagemillError as exc:
                failures += 1
                console.print(f"[red]{exc.code}[/] {path}: {exc.message}")
    return failures


def _convert_one(
    path: Path, out: Path | None, options: JobOptions, password: str | None, progress: Progress
) -> list[Path]:
    settings = get_settings()
    with path.open("rb") as f:
        kind: DocumentKind = sniff(f.read(SNIFF_BYTES))
    info = probe_document(path, kind, password=password, limits=settings.limits)
    task = progress.add_task(path.name, total=info.page_count)
    pages: list[Page] = []
    with open_source(path, kind, password=password, limits=settings.limits) as source:
        for index in range(info.page_count):
            result = reading.read_page(source, index, options, settings)
            data = result.to_dict()
            pages.append(
                Page(
                    job_id="",
                    index=index,
                    state=PageState.DONE,
                    attempts=1,
                    engine=result.engine,
                    model=result.model,
                    rotation=result.rotation,
                    text=result.text,
                    markdown=result.markdown,
                    data={"settings": data["settings"], "lines": data["lines"]},
                    duration_ms=result.timings_ms["total"],
                )
            )
            progress.advance(task)
    job = Job(id="", filename=path.name, kind=kind.value, page_count=info.page_count)
    target_dir = out or path.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fmt, fileobj in write_results(job, pages, options.formats).items():
        target = target_dir / (path.stem + _SUFFIX[fmt])
        with fileobj, target.open("wb") as dest:
            dest.write(fileobj.read())
        written.append(target)
    return written
