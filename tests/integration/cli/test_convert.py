"""`pagemill convert`: in-process conversion without a server, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import documents

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


def test_convert_writes_markdown_text_and_json(tmp_path: Path) -> None:
    pdf = documents.make_text_pdf(tmp_path / "report.pdf", ["First page text here", "Second page text here"])
    image = documents.make_text_image(tmp_path / "note.png", "Handwritten note", fmt="PNG")
    out = tmp_path / "out"
    done = _convert(str(pdf), str(image), "--out", str(out), "--engine", "tesseract")
    assert done.returncode == 0, done.stderr
    assert (out / "report.md").read_text().index("First page") < (out / "report.md").read_text().index(
        "Second"
    )
    assert (out / "report.txt").read_text().split("\f")[1].strip() == "Second page text here"
    pages = json.loads((out / "report.json").read_text())["pages"]
    assert [p["engine"] for p in pages] == ["text_layer", "text_layer"]
    assert "handwritten note" in (out / "note.txt").read_text().lower()
    assert json.loads((out / "note.json").read_text())["pages"][0]["engine"] == "tesseract"


def test_convert_reports_bad_files_with_their_code_and_fails(tmp_path: Path) -> None:
    good = documents.make_text_pdf(tmp_path / "good.pdf", ["Fine document text"])
    bad = documents.make_corrupt_pdf(tmp_path / "bad.pdf")
    done = _convert(str(good), str(bad), "--formats", "text")
    assert done.returncode == 1
    assert "CORRUPT_FILE" in done.stderr and "bad.pdf" in done.stderr
    assert (tmp_path / "good.txt").read_text().strip() == "Fine document text"
    assert not (tmp_path / "good.md").exists(), "only the requested formats are written"
