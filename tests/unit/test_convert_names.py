"""Where `pagemill convert` writes each file's results: never two files' results on the same names."""

from __future__ import annotations

from pathlib import Path

from pagemill.convert import output_stems


def test_unique_stems_keep_the_short_name(tmp_path: Path) -> None:
    files = [tmp_path / "report.pdf", tmp_path / "note.png"]
    assert output_stems(files, None) == {files[0]: tmp_path / "report", files[1]: tmp_path / "note"}


def test_stems_that_meet_in_one_folder_keep_their_extension(tmp_path: Path) -> None:
    png, jpg, other = tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "b.pdf"
    out = tmp_path / "out"
    assert output_stems([png, jpg, other], out) == {png: out / "a.png", jpg: out / "a.jpg", other: out / "b"}


def test_stems_beside_their_files_only_meet_in_the_same_folder(tmp_path: Path) -> None:
    here, there = tmp_path / "x" / "a.png", tmp_path / "y" / "a.jpg"
    assert output_stems([here, there], None) == {here: tmp_path / "x" / "a", there: tmp_path / "y" / "a"}


def test_the_same_name_from_two_folders_is_numbered(tmp_path: Path) -> None:
    first, second, third = (tmp_path / folder / "scan.pdf" for folder in ("one", "two", "three"))
    out = tmp_path / "out"
    chosen = output_stems([first, second, third], out)
    assert list(chosen.values()) == [out / "scan.pdf", out / "scan.pdf-2", out / "scan.pdf-3"]


def test_a_file_named_twice_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    assert output_stems([path, path], None) == {path: tmp_path / "a"}
