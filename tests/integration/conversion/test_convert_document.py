"""The library: convert_document reads pages as the workers do (text layer, OCR, the sandboxed probe and
its limits), reports progress in order, records a page's error instead of failing the document, and
writes exactly the server's result formats."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pagemill
from pagemill.conversion import ConversionResult, ConvertedPage, JobOptions, NoProgress, OcrMode, OutputFormat
from pagemill.errors import CorruptFile, EngineNotConfigured, TooManyPages, ValidationFailed
from pagemill.jobs.results import PageRecord, page_body
from pagemill.settings import Settings
from tests.support import documents
from tests.support.services import REPO_ROOT, free_port

pytestmark = pytest.mark.integration


class Recorder(NoProgress):
    """Every callback, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def page_started(self, number: int, total: int) -> None:
        self.calls.append(("started", number, total))

    def page_completed(self, page: ConvertedPage, total: int) -> None:
        self.calls.append(("completed", page.number, total))

    def conversion_completed(self, result: ConversionResult) -> None:
        self.calls.append(("finished", result.pages_done, len(result.pages)))


# The smallest page record, to read the API's page keys from page_body.
_SMALLEST_PAGE = PageRecord(
    index=0,
    state="done",
    text=None,
    markdown=None,
    engine=None,
    model=None,
    rotation=0,
    data=None,
    lines_json=None,
    attempts=0,
    duration_ms=None,
    error_code=None,
    error_message=None,
)


def test_text_layer_and_ocr_pages_with_a_page_range_and_progress_in_order(tmp_path: Path) -> None:
    pdf = documents.make_text_pdf(
        tmp_path / "report.pdf",
        ["First page of the report", "Second page of the report", "Third page of the report"],
    )
    recorder = Recorder()
    result = pagemill.convert_document(pdf, JobOptions(page_range="2-3"), progress=recorder)
    assert recorder.calls == [
        ("started", 2, 2),
        ("completed", 2, 2),
        ("started", 3, 2),
        ("completed", 3, 2),
        ("finished", 2, 2),
    ]
    assert (result.page_count, [page.number for page in result.pages]) == (3, [2, 3])
    assert result.text == "Second page of the report\fThird page of the report"
    assert {page.engine for page in result.pages} == {"text_layer"}
    assert set(result.timings_ms) == {"probe", "pages", "total"} and result.timings_ms["total"] > 0

    scan = documents.make_scanned_pdf(tmp_path / "scan.pdf", ["Scanned invoice total"])
    scanned = pagemill.convert_document(scan, JobOptions(engine="tesseract"))
    page = scanned.pages[0]
    assert page.engine == "tesseract" and "invoice" in (page.text or "").lower()
    assert page.lines and page.timings_ms["render"] > 0 and page.settings["dpi"] > 0


def test_results_are_the_server_formats(tmp_path: Path) -> None:
    pdf = documents.make_text_pdf(tmp_path / "memo.pdf", ["Memo about the quarterly budget", "Page two text"])
    result = pagemill.convert_document(pdf, JobOptions(ocr_mode=OcrMode.TEXT_LAYER))
    written = result.write(tmp_path / "out" / "memo", [OutputFormat.MARKDOWN, OutputFormat.JSON])
    assert [path.name for path in written] == ["memo.md", "memo.json"]
    assert (tmp_path / "out" / "memo.md").read_bytes() == result.render(OutputFormat.MARKDOWN)
    assert result.markdown.startswith("<!-- page 1 -->\n\nMemo about the quarterly budget\n\n<!-- page 2 -->")
    document = json.loads((tmp_path / "out" / "memo.json").read_text())
    assert (document["filename"], document["kind"], document["page_count"]) == ("memo.pdf", "pdf", 2)
    # Each page has exactly the keys of the API's page object.
    assert list(document["pages"][0]) == list(page_body(_SMALLEST_PAGE))
    assert not list((tmp_path / "out").glob(".*")), "no temporary file is left"


def test_a_page_the_engine_cannot_read_is_a_failed_page_not_an_exception(tmp_path: Path) -> None:
    pdf = documents.make_text_pdf(tmp_path / "mixed.pdf", ["A page with a real text layer"])
    image = documents.make_text_image(tmp_path / "photo.png", "Photo text")
    # A model server that is not there: every OCR page fails with its error; text pages still read.
    settings = Settings(
        engines={"default": "vllm", "vllm": {"base_url": f"http://127.0.0.1:{free_port()}", "max_retries": 0}}
    )
    assert pagemill.convert_document(pdf, settings=settings).pages[0].ok
    result = pagemill.convert_document(image, settings=settings)
    assert not result.ok and result.pages_failed == 1
    error = result.pages[0].error
    assert error is not None and error.code == "ENGINE_UNAVAILABLE", error
    assert json.loads(result.render(OutputFormat.JSON))["pages"][0]["error"]["code"] == "ENGINE_UNAVAILABLE"


def test_documents_and_options_that_cannot_be_read_raise_their_error(tmp_path: Path) -> None:
    bad = documents.make_corrupt_pdf(tmp_path / "bad.pdf")
    with pytest.raises(CorruptFile):
        pagemill.convert_document(bad)
    two_pages = documents.make_text_pdf(tmp_path / "two.pdf", ["One page of text", "Another page of text"])
    with pytest.raises(TooManyPages):  # the limits of the settings, enforced by the sandboxed probe
        pagemill.convert_document(two_pages, settings=Settings(limits={"max_pages": 1}))
    with pytest.raises(ValidationFailed):
        pagemill.convert_document(two_pages, JobOptions(engine="abbyy"))
    with pytest.raises(EngineNotConfigured):
        pagemill.convert_document(two_pages, JobOptions(engine="vllm"), settings=Settings())
    with pytest.raises(FileNotFoundError):
        pagemill.convert_document(tmp_path / "missing.pdf")


def test_the_documented_example_runs(tmp_path: Path) -> None:
    text = (REPO_ROOT / "docs" / "library.md").read_text()
    example = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert example is not None
    documents.make_text_pdf(tmp_path / "report.pdf", [f"Page {n} of the annual report" for n in range(1, 7)])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", example.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["page 1: text_layer", "page 2: text_layer"]
    assert "5/5 pages in" in done.stdout, "page_range 1-5 of 6"
    assert (tmp_path / "out" / "report.md").read_text().startswith("<!-- page 1 -->\n\nPage 1 of the annual")
    assert (tmp_path / "out" / "report.json").is_file()
