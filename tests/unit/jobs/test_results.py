"""Assembling result files from pages, on transient model objects (no database)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import pytest

from pagemill.engines.base import TextLine
from pagemill.jobs.options import OutputFormat
from pagemill.jobs.results import (
    PAGE_SEPARATOR_TEXT,
    job_outcome,
    page_body,
    page_json,
    public_lines,
    write_results,
)
from pagemill.jobs.schemas import PageOut
from pagemill.models import Job, JobState, Page, PageState

JOB_ID = "0b0f4f64-3f0a-4b7f-9a59-8c2b7f1b2c11"


def make_job(page_count: int = 3) -> Job:
    """A transient job as a worker sees it when it assembles results."""
    return Job(
        id=JOB_ID,
        state=JobState.RUNNING,
        filename='Résumé "final".pdf',
        kind="pdf",
        size_bytes=1234,
        sha256="0" * 64,
        source_key=f"jobs/{JOB_ID}/source",
        options={"formats": ["markdown", "text", "json"]},
        page_count=page_count,
    )


def make_page(
    index: int,
    text: str | None,
    *,
    markdown: str | None = None,
    lines: list[dict[str, Any]] | None = None,
    state: PageState = PageState.DONE,
    error_code: str | None = None,
) -> Page:
    """A transient page; every column a result reads is set (defaults only apply on insert)."""
    return Page(
        job_id=JOB_ID,
        index=index,
        state=state,
        attempts=1,
        engine="text_layer" if state == PageState.DONE else None,
        model=None,
        rotation=0,
        text=text,
        markdown=markdown if markdown is not None else text,
        data={"lines": lines or [], "settings": {"dpi": 300}},
        lines_json=None,
        error_code=error_code,
        error_message="The page could not be read." if error_code else None,
        duration_ms=12.5,
    )


def three_pages() -> list[Page]:
    return [
        make_page(
            0,
            "First page\nsecond line",
            markdown="# First page\n\nsecond line",
            lines=[
                {"text": "First page", "bbox": [0.1, 0.1, 0.5, 0.15], "confidence": 0.99},
                {"text": "second line", "bbox": [0.1, 0.2, 0.6, 0.25], "confidence": None},
            ],
        ),
        make_page(1, 'Zweite Seite: "Grüße" \\ 日本', lines=[{"text": "Zweite Seite", "bbox": None}]),
        make_page(2, "Third page", lines=[{"text": "Third page", "bbox": [0.0, 0.0, 1.0, 1.0]}]),
    ]


@pytest.fixture
def opened() -> Iterator[list[dict[OutputFormat, IO[bytes]]]]:
    """Collects what write_results returns and closes every temp file after the test."""
    results: list[dict[OutputFormat, IO[bytes]]] = []
    yield results
    for files in results:
        for f in files.values():
            f.close()


def write(
    opened: list[dict[OutputFormat, IO[bytes]]],
    pages: Any,
    formats: list[OutputFormat],
    job: Job | None = None,
) -> dict[OutputFormat, IO[bytes]]:
    files = write_results(job or make_job(), pages, formats)
    opened.append(files)
    return files


def read_text(files: dict[OutputFormat, IO[bytes]], fmt: OutputFormat) -> str:
    return files[fmt].read().decode("utf-8")


def test_markdown_marks_every_page_in_order(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    files = write(opened, three_pages(), [OutputFormat.MARKDOWN])
    assert read_text(files, OutputFormat.MARKDOWN) == (
        "<!-- page 1 -->\n\n# First page\n\nsecond line"
        '\n\n<!-- page 2 -->\n\nZweite Seite: "Grüße" \\ 日本'
        "\n\n<!-- page 3 -->\n\nThird page"
    )


def test_markers_carry_document_page_numbers_of_a_page_range(
    opened: list[dict[OutputFormat, IO[bytes]]],
) -> None:
    # page_range "2,5-6" selects indices 1, 4, 5: the markers must say 2, 5, 6.
    pages = [make_page(1, "two"), make_page(4, "five"), make_page(5, None)]
    files = write(opened, pages, [OutputFormat.MARKDOWN], make_job(page_count=6))
    markdown = read_text(files, OutputFormat.MARKDOWN)
    assert markdown == "<!-- page 2 -->\n\ntwo\n\n<!-- page 5 -->\n\nfive\n\n<!-- page 6 -->\n\n"


def test_text_pages_are_separated_by_form_feeds(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    pages = three_pages()
    files = write(opened, pages, [OutputFormat.TEXT])
    text = read_text(files, OutputFormat.TEXT)
    assert PAGE_SEPARATOR_TEXT == "\f"
    assert text.split("\f") == [page.text for page in pages]
    assert not text.startswith("\f") and not text.endswith("\f")


def test_a_page_without_text_keeps_its_place_in_text(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    pages = [
        make_page(0, "one"),
        make_page(1, None, state=PageState.FAILED, error_code="PROCESSING_FAILED"),
        make_page(2, "three"),
    ]
    files = write(opened, pages, [OutputFormat.TEXT])
    assert read_text(files, OutputFormat.TEXT) == "one\f\fthree"


def test_json_is_valid_and_has_every_page_with_lines_and_boxes(
    opened: list[dict[OutputFormat, IO[bytes]]],
) -> None:
    pages = three_pages()
    files = write(opened, pages, [OutputFormat.JSON])
    document = json.loads(files[OutputFormat.JSON].read())
    assert document["job_id"] == JOB_ID
    assert document["filename"] == 'Résumé "final".pdf'
    assert document["kind"] == "pdf"
    assert document["page_count"] == 3
    assert [page["page"] for page in document["pages"]] == [1, 2, 3]
    assert [page["text"] for page in document["pages"]] == [page.text for page in pages]
    assert document["pages"][0]["markdown"] == "# First page\n\nsecond line"
    assert document["pages"][0]["lines"] == [
        {"text": "First page", "bbox": [0.1, 0.1, 0.5, 0.15], "confidence": 0.99},
        {"text": "second line", "bbox": [0.1, 0.2, 0.6, 0.25], "confidence": None},
    ]
    assert document["pages"][1]["lines"] == [{"text": "Zweite Seite", "bbox": None, "confidence": None}]
    assert document["pages"][2]["lines"][0]["bbox"] == [0.0, 0.0, 1.0, 1.0]
    assert document["pages"][0]["engine"] == "text_layer"
    assert document["pages"][0]["settings"] == {"dpi": 300}
    assert document["pages"][0]["state"] == "done"


def test_json_reports_a_failed_page_with_its_error(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    pages = [make_page(0, "ok"), make_page(1, None, state=PageState.FAILED, error_code="PROCESSING_FAILED")]
    document = json.loads(write(opened, pages, [OutputFormat.JSON])[OutputFormat.JSON].read())
    failed = document["pages"][1]
    assert failed["state"] == "failed"
    assert failed["text"] is None
    assert failed["error"]["code"] == "PROCESSING_FAILED"


def test_json_of_a_job_with_no_pages_is_still_valid(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    files = write(opened, [], list(OutputFormat))
    assert json.loads(files[OutputFormat.JSON].read())["pages"] == []
    assert files[OutputFormat.MARKDOWN].read() == b""
    assert files[OutputFormat.TEXT].read() == b""


def test_all_formats_come_from_one_pass_over_the_pages(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    consumed: list[int] = []

    def stream() -> Iterator[Page]:
        # A one-shot iterator, like repository.iter_pages: a second pass would see nothing.
        for page in three_pages():
            consumed.append(page.index)
            yield page

    files = write(opened, stream(), list(OutputFormat))
    assert consumed == [0, 1, 2]
    assert read_text(files, OutputFormat.MARKDOWN).count("<!-- page ") == 3
    assert read_text(files, OutputFormat.TEXT).count("\f") == 2
    assert len(json.loads(files[OutputFormat.JSON].read())["pages"]) == 3


def test_many_pages_stream_into_valid_json(opened: list[dict[OutputFormat, IO[bytes]]]) -> None:
    pages = (make_page(i, f"page {i + 1}") for i in range(1000))
    files = write(opened, pages, [OutputFormat.JSON, OutputFormat.MARKDOWN], make_job(page_count=1000))
    document = json.loads(files[OutputFormat.JSON].read())
    assert [page["page"] for page in document["pages"]] == list(range(1, 1001))
    markdown = read_text(files, OutputFormat.MARKDOWN)
    assert [int(n) for n in re.findall(r"<!-- page (\d+) -->", markdown)] == list(range(1, 1001))


@pytest.mark.parametrize(
    "formats",
    [[OutputFormat.TEXT], [OutputFormat.JSON], [OutputFormat.MARKDOWN, OutputFormat.JSON], []],
)
def test_only_requested_formats_are_written(
    opened: list[dict[OutputFormat, IO[bytes]]], formats: list[OutputFormat]
) -> None:
    files = write(opened, three_pages(), formats)
    assert set(files) == set(formats)
    for f in files.values():
        assert f.tell() == 0  # rewound, ready to upload
        assert f.read()


def test_job_outcome_counts() -> None:
    assert job_outcome({}) == (True, 0, 0)
    assert job_outcome({PageState.DONE: 3, PageState.FAILED: 1, PageState.SKIPPED: 2}) == (True, 3, 1)
    assert job_outcome({PageState.DONE: 3, PageState.PENDING: 1}) == (False, 3, 0)


@pytest.mark.parametrize(
    "page",
    [
        *three_pages(),
        make_page(3, None, state=PageState.FAILED, error_code="CORRUPT_FILE"),
        make_page(4, "ints", lines=[{"text": "ints", "bbox": [0, 0, 1, 1], "confidence": 1}]),
        make_page(5, "bare line", lines=[{"text": "bare line"}]),
        make_page(6, None, state=PageState.SKIPPED),
    ],
)
def test_the_fast_page_body_is_exactly_the_public_page_shape(page: Page) -> None:
    """Result JSON is built without pydantic for speed; it must stay what GET .../pages/{n} answers."""
    expected = PageOut.from_page(page).model_dump(mode="json")
    assert page_body(page) == expected
    assert json.dumps(page_body(page)) == json.dumps(expected), "same keys, same order, same types"


def stored_page(index: int, lines: list[TextLine]) -> Page:
    """A page as a worker saves it now: its lines serialised in ``lines_json``, none in ``data``."""
    page = make_page(index, "\n".join(line.text for line in lines))
    page.data = {"settings": {"dpi": 300}, "timings_ms": {"total": 3.0}}
    page.lines_json = public_lines(lines)
    return page


STORED_LINES = [
    TextLine('Ünïcode “quotes” \\ and "escapes"', (0, 0.25, 1, 0.5), 1),
    TextLine("no box, no confidence"),
    TextLine("box only", (0.1, 0.2, 0.3, 0.4)),
]


@pytest.mark.parametrize(
    "page",
    [stored_page(0, STORED_LINES), stored_page(1, []), *three_pages()],
    ids=["lines_json", "lines_json-empty", "data-1", "data-2", "data-3"],
)
def test_page_json_splices_stored_lines_into_the_public_shape(page: Page) -> None:
    """The JSON result splices ``lines_json`` in as stored; it must decode to exactly the public page, and
    pages saved before the column (lines in ``data``) too."""
    expected = PageOut.from_page(page).model_dump(mode="json")
    assert json.loads(page_json(page)) == expected
    assert list(json.loads(page_json(page))) == list(expected), "same keys in the same order"


def test_public_lines_are_floats_and_keep_missing_values_null() -> None:
    lines = json.loads(public_lines(STORED_LINES))
    assert lines[0] == {"text": STORED_LINES[0].text, "bbox": [0.0, 0.25, 1.0, 0.5], "confidence": 1.0}
    assert all(isinstance(value, float) for value in lines[0]["bbox"] + [lines[0]["confidence"]])
    assert lines[1] == {"text": "no box, no confidence", "bbox": None, "confidence": None}
    assert lines[2]["confidence"] is None


def test_numpy_numbers_in_a_page_made_in_process_are_written_as_plain_numbers() -> None:
    # `pagemill convert` assembles results from engine output that never went through the database.
    page = stored_page(0, STORED_LINES)
    page.data = {"settings": {"angle": np.float64(1.5), "dpi": np.int64(300)}, "timings_ms": {}}
    assert json.loads(page_json(page))["settings"] == {"angle": 1.5, "dpi": 300}
    page.data = {"settings": {"odd": object()}}
    with pytest.raises(TypeError):
        page_json(page)
