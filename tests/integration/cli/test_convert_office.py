"""`pagemill convert` on office documents: a folder of DOCX, PPTX and XLSX files, found by content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import office_files

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


def test_convert_hidden_sheets_and_formulas_flags(tmp_path: Path) -> None:
    path, _ = office_files.make_xlsx(tmp_path / "book.xlsx")
    done = _convert(str(path), "--hidden", "--formats", "json")
    assert done.returncode == 0, done.stderr
    pages = json.loads((tmp_path / "book.json").read_text())["pages"]
    assert [page["settings"].get("hidden", False) for page in pages] == [False, False, True]
    assert "hidden value" in pages[2]["text"]
