"""Office documents through the API in both modes: DOCX, PPTX, XLSX (made at test time) become jobs whose
pages are the document, its slides, its sheets; pictures inside are OCR'd; hostile files fail with their
specific code."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import EMBEDDED_ONLY, Stack
from tests.support import office_files
from tests.support import tus_client as tus

pytestmark = pytest.mark.e2e


def _pages(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = json.loads(stack.result(job_id, "json").text)["pages"]
    return pages


def _in_order(text: str, fragments: list[str]) -> None:
    positions = [text.index(fragment) for fragment in fragments]
    assert positions == sorted(positions), (fragments, text)


def _table_rows(block: dict[str, Any]) -> list[list[str]]:
    """A table block's grid of texts, a merged cell's text in each position it covers."""
    grid = [[""] * block["n_cols"] for _ in range(block["n_rows"])]
    for cell in block["cells"]:
        for r in range(cell["row"], cell["row"] + cell["row_span"]):
            for c in range(cell["col"], cell["col"] + cell["col_span"]):
                grid[r][c] = cell["text"]
    return grid


def test_docx_becomes_one_page_of_structure(stack: Stack, docs: Path) -> None:
    path, expected = office_files.make_docx(docs / "report.docx")
    response = stack.submit(path)
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "docx"
    job = stack.wait(response.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["page_count"] == 1 and job["pages"]["done"] == 1

    markdown = stack.result(job["id"], "markdown").text
    _in_order(markdown, expected.in_order)
    assert "# Quarterly Report" in markdown and "## Action items" in markdown
    assert "nan" not in markdown.lower().split() and "None" not in markdown

    page = _pages(stack, job["id"])[0]
    assert page["engine"] == "office" and page["settings"]["reader"] == "docx"
    types = [block["type"] for block in page["blocks"]]
    assert types[0] == "heading" and "list_item" in types and "table" in types
    table = next(block for block in page["blocks"] if block["type"] == "table")
    assert _table_rows(table) == expected.table_cells
    items = [block for block in page["blocks"] if block["type"] == "list_item"]
    assert [(item["level"], item["marker"]) for item in items[:4]] == [
        (0, "1."),
        (1, "a)"),
        (1, "b)"),
        (0, "2."),
    ]
    assert items[0]["ordered"] and not items[4]["ordered"]


def test_picture_inside_a_docx_is_read_by_ocr(stack: Stack, docs: Path) -> None:
    path, _ = office_files.make_docx(docs / "scan.docx", picture_text="Pasted invoice total 4711")
    job = stack.wait(stack.submit_ok(path, formats="json,text"))
    assert job["state"] == "succeeded", job
    page = _pages(stack, job["id"])[0]
    assert page["engine"] == "office"
    assert [p["engine"] for p in page["settings"]["pictures"]] in (["tesseract"], ["rapidocr"])
    image = next(block for block in page["blocks"] if block["type"] == "image")
    assert "4711" in image["text"]
    assert "4711" in stack.result(job["id"], "text").text

    # ocr_mode=text_layer reads the structure only.
    plain = stack.wait(stack.submit_ok(path, formats="text", ocr_mode="text_layer"))
    assert plain["state"] == "succeeded", plain
    assert "4711" not in stack.result(plain["id"], "text").text


@EMBEDDED_ONLY
def test_pptx_slides_are_pages_with_notes(stack: Stack, docs: Path) -> None:
    path, expected = office_files.make_pptx(docs / "deck.pptx")
    job = stack.wait(stack.submit_ok(path))
    assert job["state"] == "succeeded", job
    assert job["page_count"] == expected.pages, "the hidden slide is skipped by default"
    markdown = stack.result(job["id"], "markdown").text
    _in_order(markdown, expected.in_order)
    assert "Internal only" not in markdown

    without_notes = stack.wait(stack.submit_ok(path, speaker_notes="false", hidden="true"))
    assert without_notes["page_count"] == 3
    pages = _pages(stack, without_notes["id"])
    assert [page["settings"].get("hidden", False) for page in pages] == [False, True, False]
    assert "budget risk" not in "".join(page["markdown"] for page in pages)


@EMBEDDED_ONLY
def test_xlsx_sheets_are_pages_and_page_range_picks_them(stack: Stack, docs: Path) -> None:
    path, expected = office_files.make_xlsx(docs / "book.xlsx")
    job = stack.wait(stack.submit_ok(path))
    assert job["state"] == "succeeded", job["error"]
    assert job["page_count"] == 2
    pages = _pages(stack, job["id"])
    assert [page["settings"]["title"] for page in pages] == ["Sales", "Costs"]
    table = next(block for block in pages[0]["blocks"] if block["type"] == "table")
    assert _table_rows(table) == expected.table_cells

    second = stack.wait(stack.submit_ok(path, page_range="2", formats="markdown"))
    markdown = stack.result(second["id"], "markdown").text
    assert "Rent" in markdown and "North" not in markdown


@EMBEDDED_ONLY
def test_office_options_in_tus_metadata(stack: Stack, docs: Path) -> None:
    path, _ = office_files.make_pptx(docs / "deck.pptx")
    data = path.read_bytes()
    upload = tus.create_ok(stack.client, len(data), filename="deck.pptx", speaker_notes="false")
    done = tus.patch(stack.client, upload, 0, data)
    assert done.status_code == 204, done.text
    job_id = done.headers["pagemill-job-id"]
    job = stack.wait(job_id)
    assert job["state"] == "succeeded", job
    assert job["options"]["speaker_notes"] is False
    assert "budget risk" not in stack.result(job_id, "markdown").text


def _zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_hostile_office_files_fail_with_their_codes(shared_embedded_stack: Stack, docs: Path) -> None:
    # The checks run in the worker's probe whatever the mode: the embedded stack alone is enough.
    stack = shared_embedded_stack
    good, _ = office_files.make_docx(docs / "good.docx")
    data = good.read_bytes()
    truncated = docs / "truncated.docx"
    truncated.write_bytes(data[: len(data) // 2])
    # A DOCX whose document part inflates from a few KB to 2 MB: over the compression ratio.
    with zipfile.ZipFile(good) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["word/document.xml"] = b"<w:document>" + b" " * 2_000_000 + b"</w:document>"
    bomb = docs / "bomb.docx"
    bomb.write_bytes(_zip_bytes(members))
    laughs = docs / "laughs.docx"
    members["word/document.xml"] = (
        b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        b"<w:document>&b;</w:document>"
    )
    laughs.write_bytes(_zip_bytes(members))

    outcomes = {}
    for path in (truncated, bomb, laughs):
        response = stack.submit(path)
        if response.status_code != 202:
            outcomes[path.name] = response.json()["error"]["code"]
            continue
        job = stack.wait(response.json()["id"])
        assert job["state"] == "failed", job
        outcomes[path.name] = job["error"]["code"]
    # A truncated zip has no directory; its first bytes name its main part, and reading it fails.
    assert outcomes == {
        "truncated.docx": "CORRUPT_FILE",
        "bomb.docx": "ARCHIVE_BOMB",
        "laughs.docx": "ARCHIVE_BOMB",
    }


@pytest.mark.skipif(
    shutil.which("soffice") is None, reason="LibreOffice not installed: make system-deps installs it"
)
def test_legacy_doc_through_libreoffice(shared_embedded_stack: Stack, docs: Path) -> None:
    # LibreOffice runs in the worker's probe whatever the mode: the embedded stack alone is enough.
    stack = shared_embedded_stack
    from tests.integration.documents.test_legacy_office import soffice_convert

    odt = soffice_convert(office_files.make_docx(docs / "report.docx")[0], "odt", docs)
    doc = soffice_convert(odt, "doc", docs)
    response = stack.submit(doc)
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "doc"
    job = stack.wait(response.json()["id"], timeout=180)
    assert job["state"] == "succeeded", job["error"]
    assert job["page_count"] == 1
    markdown = stack.result(job["id"], "markdown").text
    assert "Quarterly Report" in markdown and "North" in markdown


def _other_formats(docs: Path) -> dict[str, tuple[Path, int, list[str]]]:
    """One file of each other office kind: (path, pages, text in order)."""
    from tests.support import odf_files
    from tests.unit.documents.office.test_eml import _message
    from tests.unit.documents.office.test_epub import _epub

    odt = odf_files.write_odf(
        docs / "notes.odt",
        "text",
        '<text:h text:outline-level="1">Field notes</text:h><text:p>The river rose overnight.</text:p>',
    )
    ods = odf_files.write_odf(
        docs / "stock.ods",
        "spreadsheet",
        '<table:table table:name="Stock"><table:table-row><table:table-cell office:value-type="string">'
        "<text:p>Fruit</text:p></table:table-cell></table:table-row><table:table-row>"
        '<table:table-cell office:value-type="string"><text:p>Apples</text:p></table:table-cell>'
        "</table:table-row></table:table>",
    )
    html = docs / "page.html"
    html.write_text(
        "<!DOCTYPE html><html><head><title>Guide</title><script>var hidden = 1;</script></head><body>"
        "<h1>Install guide</h1><ol start='3'><li>Download</li><li>Run it</li></ol></body></html>"
    )
    eml = docs / "message.eml"
    eml.write_bytes(bytes(_message()))
    return {
        "odt": (odt, 1, ["Field notes", "The river rose overnight."]),
        "ods": (ods, 1, ["Stock", "Apples"]),
        "html": (html, 1, ["Install guide", "3. Download", "4. Run it"]),
        "epub": (_epub(docs / "book.epub"), 3, []),
        "eml": (eml, 1, ["Café report", "Hello"]),
    }


@EMBEDDED_ONLY
def test_odf_html_epub_and_eml_through_the_api(stack: Stack, docs: Path) -> None:
    for kind, (path, pages, fragments) in _other_formats(docs).items():
        response = stack.submit(path, formats="markdown,json")
        assert response.status_code == 202, (kind, response.text)
        assert response.json()["kind"] == kind
        job = stack.wait(response.json()["id"])
        assert job["state"] == "succeeded", (kind, job["error"])
        assert job["page_count"] == pages, kind
        markdown = stack.result(job["id"], "markdown").text
        _in_order(markdown, fragments)
        assert "var hidden" not in markdown
        assert all(page["blocks"] for page in _pages(stack, job["id"])), kind
