"""What `pagemill convert` and `submit` work on: folders (by content), patterns, named files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagemill.bulk.inputs import InputProblem, collect_files, is_url, result_stems

PDF = b"%PDF-1.7\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def make(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_keep_supported_content_whatever_the_name_and_mirror_under_out(tmp_path: Path) -> None:
    root = tmp_path / "in"
    a = make(root / "a.pdf", PDF)
    scan = make(root / "sub" / "scan.dat", PNG)  # a PNG by its bytes
    make(root / "a.md", b"# results of a.pdf")
    make(root / "fake.pdf", b"plain text, no document")
    make(root / ".hidden" / "x.pdf", PDF)
    make(root / ".x.pdf", PDF)
    found = collect_files([str(root)])
    assert [item.path for item in found.files] == [a, scan]
    assert sorted(path.name for path in found.ignored) == ["a.md", "fake.pdf"]
    out = tmp_path / "out"
    assert result_stems(found.files, out) == {a: out / "a", scan: out / "sub" / "scan"}
    assert result_stems(found.files, None) == {a: root / "a", scan: root / "sub" / "scan"}


def test_named_files_are_always_taken_patterns_filter_and_nothing_is_taken_twice(tmp_path: Path) -> None:
    named = make(tmp_path / "notes.txt", b"text")
    pdf = make(tmp_path / "docs" / "2024" / "r.pdf", PDF)
    make(tmp_path / "docs" / "2024" / "r.txt", b"text")
    found = collect_files([str(named), str(tmp_path / "docs" / "**" / "r.*"), str(pdf)])
    assert [item.path for item in found.files] == [named, pdf], "the named file is tried (and will fail)"
    assert [item.under_out for item in found.files] == [Path(), Path("2024")]
    with pytest.raises(InputProblem, match="does not exist"):
        collect_files([str(tmp_path / "missing.pdf")])
    with pytest.raises(InputProblem, match="no file matches"):
        collect_files([str(tmp_path / "*.tiff")])


def test_urls() -> None:
    assert is_url("https://example.com/a.pdf") and is_url("HTTP://example.com")
    assert not is_url("ftp://example.com/a.pdf") and not is_url("report.pdf")
