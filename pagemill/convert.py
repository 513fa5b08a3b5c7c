"""In-process conversion for `pagemill convert`: the same readers as the workers, no server or database."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
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


def output_stems(files: list[Path], out: Path | None) -> dict[Path, Path]:
    """Where each file's results go, without the format suffix: ``OUT/report`` for ``report.pdf``.

    Files whose stems meet in one folder (``a.png`` and ``a.jpg``) keep their whole name instead
    (``a.png``, ``a.jpg``: results ``a.png.md``, ``a.jpg.md``), so no file's results overwrite
    another's; a name met twice still (the same name from two folders) gets ``-2``, ``-3``.
    """
    targets = {path: (out or path.parent).resolve() for path in dict.fromkeys(files)}
    stems: dict[tuple[Path, str], int] = {}
    for path, folder in targets.items():
        stems[(folder, path.stem)] = stems.get((folder, path.stem), 0) + 1
    chosen: dict[Path, Path] = {}
    taken: set[Path] = set()
    for path, folder in targets.items():
        name = path.stem if stems[(folder, path.stem)] == 1 else path.name
        candidate, number = folder / name, 1
        while candidate in taken:
            number += 1
            candidate = folder / f"{name}-{number}"
        taken.add(candidate)
        chosen[path] = candidate
    return chosen


def convert_files(
    files: list[Path],
    *,
    out: Path | None,
    formats: list[OutputFormat],
    ocr_mode: OcrMode,
    engine: str | None,
    password: str | None,
) -> int:
    """Convert each file, print a line per file; returns how many failed."""
    options = JobOptions(formats=formats, ocr_mode=ocr_mode, engine=engine)
    targets = output_stems(files, out)
    console = Console(stderr=True)
    failures = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for path, target in targets.items():
            try:
                written = _convert_one(path, target, options, password, progress)
                console.print(f"[green]ok[/] {escape(str(path))} -> {escape(', '.join(map(str, written)))}")
            except PagemillError as exc:
                failures += 1
                console.print(f"[red]{exc.code}[/] {escape(str(path))}: {escape(exc.message)}")
    return failures


def _convert_one(
    path: Path, target: Path, options: JobOptions, password: str | None, progress: Progress
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
    target.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fmt, fileobj in write_results(job, pages, options.formats).items():
        destination = target.with_name(target.name + _SUFFIX[fmt])
        with fileobj, destination.open("wb") as dest:
            dest.write(fileobj.read())
        written.append(destination)
    return written
