"""Assembling a job's pages into its result files, streamed through temp files (never all in memory)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import orjson

from pagemill.documents.audio.subtitles import Segment, to_srt, to_vtt
from pagemill.engines.base import TextLine
from pagemill.jobs.options import OutputFormat
from pagemill.models import Job, Page, PageState

PAGE_SEPARATOR_TEXT = "\f"
"""Form feed between pages in plain text, as pdftotext does."""


def _page_marker(number: int) -> str:
    return f"<!-- page {number} -->"


@dataclass(slots=True)
class PageRecord:
    """A page's columns for result assembly without an ORM row: read straight from the database
    (:func:`pagemill.jobs.repository.iter_page_records`) or made by an in-process conversion."""

    index: int
    state: str
    text: str | None
    markdown: str | None
    engine: str | None
    model: str | None
    rotation: int
    data: dict[str, Any] | None
    lines_json: str | None
    attempts: int
    duration_ms: float | None
    error_code: str | None
    error_message: str | None


PageLike = Page | PageRecord
"""What result assembly reads of a page: a ``Page`` row, or a :class:`PageRecord` of the same columns."""


def _plain(value: Any) -> Any:
    """What orjson cannot encode itself but the standard encoder did: numbers of numpy's (an engine's
    settings may hold one in a result made in-process, by `pagemill convert`)."""
    item = getattr(value, "item", None)
    if callable(item):
        plain = item()
        if isinstance(plain, (int, float, bool, str)):
            return plain
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_plain)


def _floats(values: Iterable[Any] | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def public_lines(lines: Iterable[TextLine]) -> str:
    """An engine's lines as the JSON array of their public shape (``LineOut``), stored with the page as
    ``lines_json`` by the worker that read it."""
    # orjson: about 6x the standard encoder on lines of text and boxes, paid for every page read.
    return _dumps(
        [
            {
                "text": line.text,
                "bbox": _floats(line.bbox),
                "confidence": None if line.confidence is None else float(line.confidence),
            }
            for line in lines
        ]
    ).decode()


def page_lines(page: PageLike) -> list[dict[str, Any]]:
    """A page's lines in their public shape: from ``lines_json``, or from ``data`` on pages saved before
    that column."""
    if page.lines_json is not None:
        lines: list[dict[str, Any]] = orjson.loads(page.lines_json)
        return lines
    return [
        {
            "text": line["text"],
            "bbox": _floats(line.get("bbox")),
            "confidence": None if (confidence := line.get("confidence")) is None else float(confidence),
        }
        for line in (page.data or {}).get("lines", [])
    ]


def _body_without_lines(page: PageLike) -> dict[str, Any]:
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
        "attempts": page.attempts,
        "duration_ms": page.duration_ms,
        "error": error,
        "blocks": data.get("blocks"),
        "segments": data.get("segments"),
    }


def page_body(page: PageLike) -> dict[str, Any]:
    """A page's public JSON shape, exactly ``PageOut.from_page(page).model_dump(mode="json")`` (same keys in
    the same order, lines last), built without a model per page and per line."""
    return {**_body_without_lines(page), "lines": page_lines(page)}


def page_json(page: PageLike) -> bytes:
    """``page_body(page)`` encoded as JSON, with a page's stored ``lines_json`` spliced in as it is: a
    1,000-page document has tens of thousands of lines, and decoding and re-encoding them in the one process
    that assembles the result was most of the time of writing it."""
    if page.lines_json is None:
        return _dumps(page_body(page))
    # orjson: the head holds the page's text and markdown, escaped here at several times the standard
    # encoder's speed, on the one process that assembles the result while the others wait.
    head = _dumps(_body_without_lines(page))
    return b"".join((head[:-1], b',"lines":', page.lines_json.encode(), b"}"))


def write_results(
    job: Job, pages: Iterable[PageLike], formats: list[OutputFormat], *, partial: bool = False
) -> dict[OutputFormat, IO[bytes]]:
    """Write the requested formats to temp files (rewound) in one pass over the pages. ``partial``: the
    pages finished so far of a job still running (the JSON says so: ``partial``, ``pages_total``)."""
    files: dict[OutputFormat, IO[bytes]] = {
        fmt: tempfile.TemporaryFile()  # noqa: SIM115 - returned open to the caller
        for fmt in formats
    }
    first = True
    subtitles: list[Segment] = []  # a recording's segments (a few thousand for hours of audio)
    json_out = files.get(OutputFormat.JSON)
    if json_out is not None:
        header: dict[str, Any] = {
            "job_id": job.id,
            "filename": job.filename,
            "kind": job.kind,
            "page_count": job.page_count,
        }
        if partial:
            header.update(partial=True, pages_total=job.pages_total)
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
            json_out.write((b"" if first else b", ") + page_json(page))
        if OutputFormat.SRT in files or OutputFormat.VTT in files:
            subtitles += [
                Segment(float(s["start_s"]), float(s["end_s"]), str(s["text"]))
                for s in (page.data or {}).get("segments") or []
            ]
        first = False
    if json_out is not None:
        json_out.write(b"]}")
    if OutputFormat.SRT in files:
        files[OutputFormat.SRT].write(to_srt(subtitles).encode())
    if OutputFormat.VTT in files:
        files[OutputFormat.VTT].write(to_vtt(subtitles).encode())
    for f in files.values():
        f.seek(0)
    return files


def job_outcome(counts: dict[str, int]) -> tuple[bool, int, int]:
    """(all pages final, pages done, pages failed) from page state counts."""
    pending = counts.get(PageState.PENDING, 0)
    return pending == 0, counts.get(PageState.DONE, 0), counts.get(PageState.FAILED, 0)
