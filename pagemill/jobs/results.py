"""Assembling a job's pages into its result files, streamed through temp files (never all in memory)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from typing import IO, Any, Protocol

from pagemill.jobs.options import OutputFormat
from pagemill.models import Job, PageState

PAGE_SEPARATOR_TEXT = "\f"
"""Form feed between pages in plain text, as pdftotext does."""


def _page_marker(number: int) -> str:
    return f"<!-- page {number} -->"


class PageLike(Protocol):
    """What result assembly reads of a page: a ``Page`` row, or a lighter record of the same columns."""

    index: int
    state: str
    text: str | None
    markdown: str | None
    engine: str | None
    model: str | None
    rotation: int
    data: dict[str, Any] | None
    attempts: int
    duration_ms: float | None
    error_code: str | None
    error_message: str | None


def _floats(values: list[Any] | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def page_body(page: PageLike) -> dict[str, Any]:
    """A page's public JSON shape, exactly ``PageOut.from_page(page).model_dump(mode="json")``, built
    without a model per page and per line: a 1,000-page document has tens of thousands of lines, and
    validating them made up most of the time of writing its results."""
    data = page.data or {}
    error = None
    if page.error_code:
        error = {"code": page.error_code, "message": page.error_message or "", "details": {}}
    return {
        "page": page.index + 1,
        "state": page.state,
        "text": page.text,
        "markdown": page.markdown,
        "engine": page.engine,
        "model": page.model,
        "rotation": page.rotation,
        "settings": data.get("settings", {}),
        "lines": [
            {
                "text": line["text"],
                "bbox": _floats(line.get("bbox")),
                "confidence": None if (confidence := line.get("confidence")) is None else float(confidence),
            }
            for line in data.get("lines", [])
        ],
        "attempts": page.attempts,
        "duration_ms": page.duration_ms,
        "error": error,
    }


def write_results(
    job: Job, pages: Iterable[PageLike], formats: list[OutputFormat]
) -> dict[OutputFormat, IO[bytes]]:
    """Write the requested formats to temp files (rewound) in one pass over the pages."""
    files: dict[OutputFormat, IO[bytes]] = {
        fmt: tempfile.TemporaryFile()  # noqa: SIM115 - returned open to the caller
        for fmt in formats
    }
    first = True
    json_out = files.get(OutputFormat.JSON)
    if json_out is not None:
        header: dict[str, Any] = {
            "job_id": job.id,
            "filename": job.filename,
            "kind": job.kind,
            "page_count": job.page_count,
        }
        json_out.write(json.dumps(header)[:-1].encode() + b', "pages": [')
    for page in pages:
        text = page.text or ""
        markdown = page.markdown or ""
        if OutputFormat.MARKDOWN in files:
            out = files[OutputFormat.MARKDOWN]
            prefix = "" if first else "\n\n"
            out.write(f"{prefix}{_page_marker(page.index + 1)}\n\n{markdown}".encode())
        if OutputFormat.TEXT in files:
            prefix = "" if first else PAGE_SEPARATOR_TEXT
            files[OutputFormat.TEXT].write(f"{prefix}{text}".encode())
        if json_out is not None:
            body = page_body(page)
            json_out.write((b"" if first else b", ") + json.dumps(body, ensure_ascii=False).encode())
        first = False
    if json_out is not None:
        json_out.write(b"]}")
    for f in files.values():
        f.seek(0)
    return files


def job_outcome(counts: dict[str, int]) -> tuple[bool, int, int]:
    """(all pages final, pages done, pages failed) from page state counts."""
    pending = counts.get(PageState.PENDING, 0)
    return pending == 0, counts.get(PageState.DONE, 0), counts.get(PageState.FAILED, 0)
