"""`pagemill convert` on folders and patterns, with --parallel worker processes: results mirrored under
--out, the summary, a bad file's code and exit 1, and a second run that skips what is done."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import documents
from tests.support.services import PYTHON, REPO_ROOT

pytestmark = pytest.mark.integration


def convert(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAGEMILL_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1"})
    return subprocess.run(
        [PYTHON, "-m", "pagemill", "convert", *args, "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout.strip(), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Born-digital PDFs in two levels, a scan, a damaged PDF, a text file and a hidden file."""
    root = tmp_path / "archive"
    (root / "2024" / "q1").mkdir(parents=True)
    for number in range(4):
        documents.make_text_pdf(
            root / "2024" / f"letter-{number}.pdf", [f"Letter number {number} of the year"]
        )
    documents.make_text_pdf(
        root / "2024" / "q1" / "report.pdf", ["Quarterly report page one", "Page two text"]
    )
    documents.make_text_image(root / "2024" / "q1" / "receipt.png", "Receipt total due")
    documents.make_corrupt_pdf(root / "2024" / "damaged.pdf")
    (root / "README.txt").write_text("what this archive is")
    documents.make_text_pdf(root / ".hidden.pdf", ["Not to be converted"])
    return root


def test_a_folder_in_two_processes_then_again_with_nothing_left_to_do(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = convert(str(folder), "--out", str(out), "--parallel", "2", "--engine", "tesseract")
    assert done.returncode == 1, done.stderr  # the damaged PDF
    report = report_of(done)
    assert report["files"] == {"total": 7, "done": 6, "skipped": 0, "failed": 1, "ignored": 1}, report
    assert report["failures"] == {"CORRUPT_FILE": 1}
    assert report["pages"] == {"done": 7, "failed": 0}
    assert "CORRUPT_FILE" in done.stderr and "damaged.pdf" in done.stderr
    assert "files 7: 6 done, 1 failed, 1 ignored (not PDF or image); pages 7 read" in done.stderr
    # The folder's tree, mirrored; no result for the damaged file, the text file or the hidden one.
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    stems = [
        "2024/letter-0",
        "2024/letter-1",
        "2024/letter-2",
        "2024/letter-3",
        "2024/q1/receipt",
        "2024/q1/report",
    ]
    assert written == sorted(f"{stem}{suffix}" for stem in stems for suffix in (".json", ".md", ".txt"))
    assert (out / "2024" / "letter-2.txt").read_text() == "Letter number 2 of the year"
    assert (out / "2024" / "q1" / "report.txt").read_text().split("\f")[1] == "Page two text"
    assert "receipt total" in (out / "2024" / "q1" / "receipt.txt").read_text().lower()
    assert json.loads((out / "2024" / "q1" / "receipt.json").read_text())["pages"][0]["engine"] == "tesseract"
    times = {path: path.stat().st_mtime_ns for path in out.rglob("*")}

    again = convert(str(folder), "--out", str(out), "--parallel", "2")
    assert again.returncode == 1, again.stderr
    report = report_of(again)
    assert (report["files"]["skipped"], report["files"]["failed"], report["pages"]["done"]) == (6, 1, 0), (
        report
    )
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == times, "nothing was written again"

    forced = convert(str(folder / "2024" / "letter-0.pdf"), "--out", str(out / "2024"), "--force")
    assert forced.returncode == 0 and report_of(forced)["files"]["done"] == 1, forced.stderr
    assert (out / "2024" / "letter-0.txt").stat().st_mtime_ns > times[out / "2024" / "letter-0.txt"]


def test_a_quoted_pattern_is_expanded_by_pagemill(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "pdfs"
    done = convert(
        "archive/**/report*.pdf", "archive/2024/letter-[12].pdf", "--out", str(out), cwd=folder.parent
    )
    assert done.returncode == 0, done.stderr
    assert report_of(done)["files"]["done"] == 3
    assert (out / "2024" / "q1" / "report.md").is_file()  # mirrored under the fixed folder: archive/
    assert sorted(path.name for path in out.glob("*.txt")) == ["letter-1.txt", "letter-2.txt"]

    nothing = convert("archive/*.tiff", cwd=folder.parent)
    assert nothing.returncode == 2 and "no file matches 'archive/*.tiff'" in nothing.stderr, nothing.stderr
