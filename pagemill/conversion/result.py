"""The typed result of an in-process conversion, and its files in the server's result formats."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pagemill.documents.kinds import DocumentKind
from pagemill.engines.base import TextLine
from pagemill.jobs.options import OutputFormat
from pagemill.jobs.results import PAGE_SEPARATOR_TEXT, PageRecord, public_lines, write_results
from pagemill.models import Job

RESULT_SUFFIXES: dict[OutputFormat, str] = {
    OutputFormat.MARKDOWN: ".md",
    OutputFormat.TEXT: ".txt",
    OutputFormat.JSON: ".json",
    OutputFormat.SRT: ".srt",
    OutputFormat.VTT: ".vtt",
}
"""The file suffix of each result format (``report.md``, ``report.txt``, ``report.json``)."""


@dataclass(frozen=True, slots=True)
class PageError:
    """Why a page could not be read: the same ``code`` and ``message`` a worker would store."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ConvertedPage:
    """One selected page: its text (``state == "done"``) or its error (``state == "failed"``)."""

    index: int
    """0-based position in the document (``number`` is 1-based)."""
    state: Literal["done", "failed"]
    text: str | None = None
    markdown: str | None = None
    engine: str | None = None
    """``text_layer``, or the OCR engine that read the page (after any fallbacks)."""
    model: str | None = None
    rotation: int = 0
    lines: list[TextLine] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    """How the page was read: DPI, image size, fallbacks, ... (as in the server's JSON result)."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds per step (``text_layer``, ``render``, ``ocr``, ...) and ``total``."""
    error: PageError | None = None
    blocks: list[dict[str, Any]] | None = None
    """The page's structure, for office documents (headings, lists, tables, ...)."""
    segments: list[dict[str, Any]] | None = None
    """A recording's piece: its timed segments."""

    @property
    def number(self) -> int:
        """1-based page number."""
        return self.index + 1

    @property
    def ok(self) -> bool:
        """True when the page was read."""
        return self.state == "done"


@dataclass(slots=True)
class ConversionResult:
    """A converted document: every selected page in order, read or failed, and where the time went."""

    path: Path
    kind: DocumentKind
    page_count: int
    """Pages in the document (``pages`` holds the selected ones: all unless a page range was given)."""
    pages: list[ConvertedPage]
    timings_ms: dict[str, float] = field(default_factory=dict)
    """``probe`` (opening and checking the document in the sandbox), ``pages`` and ``total``."""

    @property
    def filename(self) -> str:
        """The document's file name."""
        return self.path.name

    @property
    def pages_done(self) -> int:
        """Pages read."""
        return sum(1 for page in self.pages if page.ok)

    @property
    def pages_failed(self) -> int:
        """Pages that could not be read."""
        return len(self.pages) - self.pages_done

    @property
    def ok(self) -> bool:
        """True when at least one page was read: the server would call this job ``succeeded``."""
        return self.pages_done > 0

    @property
    def text(self) -> str:
        """Plain text of every page, pages separated by a form feed (as the ``text`` result)."""
        return PAGE_SEPARATOR_TEXT.join(page.text or "" for page in self.pages)

    @property
    def markdown(self) -> str:
        """Markdown of every page, each after its ``<!-- page N -->`` marker (as the ``markdown`` result)."""
        return self.render(OutputFormat.MARKDOWN).decode()

    def render(self, fmt: OutputFormat) -> bytes:
        """The result file in format ``fmt``, byte for byte what the server's ``/result?format=`` serves
        for the same pages (``job_id`` is empty in JSON)."""
        with write_results(self._job(), self._rows(), [fmt])[fmt] as fileobj:
            return fileobj.read()

    def write(self, stem: Path, formats: list[OutputFormat]) -> list[Path]:
        """Write ``stem`` + ``.md`` / ``.txt`` / ``.json`` for ``formats``; return the paths written.

        Each file is written under a temporary name and renamed into place, so a file that exists is
        complete (an interrupted run never leaves a half-written result that a later run would skip)."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        files = write_results(self._job(), self._rows(), formats)
        try:
            for fmt, fileobj in files.items():
                destination = stem.with_name(stem.name + RESULT_SUFFIXES[fmt])
                write_atomically(destination, iter(functools.partial(fileobj.read, 1 << 20), b""))
                written.append(destination)
        finally:
            for fileobj in files.values():
                fileobj.close()
        return written

    def _job(self) -> Job:
        return Job(id="", filename=self.filename, kind=self.kind.value, page_count=self.page_count)

    def _rows(self) -> list[PageRecord]:
        return [_record(page) for page in self.pages]


def _record(page: ConvertedPage) -> PageRecord:
    return PageRecord(
        index=page.index,
        state=page.state,
        text=page.text,
        markdown=page.markdown,
        engine=page.engine,
        model=page.model,
        rotation=page.rotation,
        data={
            "settings": page.settings,
            "timings_ms": page.timings_ms,
            **({"blocks": page.blocks} if page.blocks is not None else {}),
            **({"segments": page.segments} if page.segments is not None else {}),
        },
        lines_json=public_lines(page.lines),
        attempts=1,
        duration_ms=page.timings_ms.get("total"),
        error_code=page.error.code if page.error else None,
        error_message=page.error.message if page.error else None,
    )


def write_atomically(destination: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``destination`` through a hidden temporary file in the same folder, renamed into
    place: readers (and a later run's skip check) never see a partial file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
    )
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
