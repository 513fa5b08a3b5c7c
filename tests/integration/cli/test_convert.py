"""`pagemill convert`: in-process conversion without a server, as a user runs it."""

from __future__ import annotations

import json
import os
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


def test_files_with_the_same_stem_keep_their_own_results(tmp_path: Path) -> None:
    png = documents.make_text_image(tmp_path / "a.png", "Portable network graphic", fmt="PNG")
    jpg = documents.make_text_image(tmp_path / "a.jpg", "Joint photographic experts", fmt="JPEG")
    out = tmp_path / "out"
    done = _convert(str(png), str(jpg), "--out", str(out), "--formats", "text,json", "--engine", "tesseract")
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir()) == [
        "a.jpg.json",
        "a.jpg.txt",
        "a.png.json",
        "a.png.txt",
    ]
    assert "portable" in (out / "a.png.txt").read_text().lower()
    assert "photographic" in (out / "a.jpg.txt").read_text().lower()
    assert json.loads((out / "a.jpg.json").read_text())["filename"] == "a.jpg"


def test_the_same_name_from_two_folders_is_numbered(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = documents.make_text_pdf(tmp_path / "one" / "scan.pdf", ["From folder one"])
    second = documents.make_text_pdf(tmp_path / "two" / "scan.pdf", ["From folder two"])
    out = tmp_path / "out"
    done = _convert(str(first), str(second), "--out", str(out), "--formats", "text")
    assert done.returncode == 0, done.stderr
    assert (out / "scan.pdf.txt").read_text().strip() == "From folder one"
    assert (out / "scan.pdf-2.txt").read_text().strip() == "From folder two"


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--formats", "yaml", "'--formats'"),
        ("--formats", "markdown,pdf", "'--formats'"),
        ("--ocr-mode", "bogus", "'--ocr-mode'"),
        ("--engine", "abbyy", "'--engine'"),
    ],
)
def test_a_bad_option_value_is_one_line_and_exit_2(
    tmp_path: Path, option: str, value: str, named: str
) -> None:
    pdf = documents.make_text_pdf(tmp_path / "doc.pdf", ["Some text"])
    done = _convert(str(pdf), option, value)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        lines[0].startswith("pagemill convert: Invalid value for " + named)
        and value.split(",")[-1] in lines[0]
    )
    assert list(tmp_path.iterdir()) == [pdf], "nothing is written"


def test_a_model_engine_without_its_server_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    pdf = documents.make_text_pdf(tmp_path / "doc.pdf", ["Some text"])
    done = _convert(str(pdf), "--engine", "vllm")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "PAGEMILL_ENGINES__VLLM__BASE_URL" in done.stderr, done.stderr


def test_help_lists_every_engine() -> None:
    done = _convert("--help")
    assert done.returncode == 0
    for engine in ("tesseract", "rapidocr", "vllm", "remote-openai"):
        assert engine in done.stdout, done.stdout


@pytest.mark.parametrize("command", [["config", "check"], ["config", "show"], ["worker"], ["up"]])
def test_an_invalid_setting_is_one_line_naming_it_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    env = {**os.environ, "PAGEMILL_DATA_DIR": str(tmp_path / "data"), "PAGEMILL_WORKER__CLAIM_TTL_S": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pagemill", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (
        "pagemill: invalid setting worker.claim_ttl_s (PAGEMILL_WORKER__CLAIM_TTL_S): "
        "Input should be greater than or equal to 3"
    )
