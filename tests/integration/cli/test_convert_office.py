"""`pagemill convert` on office documents: a folder of DOCX, PPTX and XLSX files, found by content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import odf_files, office_files

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _convert(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagemill", "convert", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_convert_a_folder_of_office_files(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _, docx = office_files.make_docx(folder / "report.docx")
    _, pptx = office_files.make_pptx(folder / "deck.pptx")
    _, xlsx = office_files.make_xlsx(folder / "book.xlsx")
    (folder / "notes.txt").write_text("plain text is not a supported type")
    (folder / "guide.htm").write_text("<html><body><h2>Install</h2><ul><li>Download</li></ul></body></html>")
    odf_files.write_odf(folder / "field.odt", "text", "<text:h text:outline-level='1'>Field notes</text:h>")
    out = tmp_path / "out"
    done = _convert(str(folder), "--out", str(out), "--table-format", "html", "--no-speaker-notes")
    assert done.returncode == 0, done.stderr
    for stem, expected in (("report", docx), ("deck", pptx), ("book", xlsx)):
        markdown = (out / f"{stem}.md").read_text()
        positions = [
            markdown.index(fragment)
            for fragment in expected.in_order
            if fragment != "Mention the budget risk"
        ]
        assert positions == sorted(positions), (stem, markdown)
        assert len(json.loads((out / f"{stem}.json").read_text())["pages"]) == expected.pages
    assert "<table>" in (out / "book.md").read_text()
    assert 'colspan="2"' in (out / "report.md").read_text()
    assert "budget risk" not in (out / "deck.md").read_text()
    assert not (out / "notes.md").exists()
    assert "## Install\n\n- Download" in (out / "guide.md").read_text()
    assert "# Field notes" in (out / "field.md").read_text()


def test_convert_hidden_sheets_and_formulas_flags(tmp_path: Path) -> None:
    path, _ = office_files.make_xlsx(tmp_path / "book.xlsx")
    done = _convert(str(path), "--hidden", "--formats", "json")
    assert done.returncode == 0, done.stderr
    pages = json.loads((tmp_path / "book.json").read_text())["pages"]
    assert [page["settings"].get("hidden", False) for page in pages] == [False, False, True]
    assert "hidden value" in pages[2]["text"]
