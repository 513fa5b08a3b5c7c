"""Zip containers are checked from their directory before anything is inflated; XML parts without entities."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from pagemill.documents.office.archive import open_archive, parse_xml
from pagemill.errors import ArchiveBomb, CorruptFile
from pagemill.settings import LimitSettings


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_members_read_back(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {"a.xml": b"<a><b>text</b></a>", "media/x.bin": b"\x00\x01"})
    with open_archive(path, LimitSettings()) as archive:
        assert archive.names == ["a.xml", "media/x.bin"]
        assert archive.xml("a.xml").findtext("b") == "text"
        assert archive.read("media/x.bin") == b"\x00\x01"
        with pytest.raises(CorruptFile):
            archive.read("missing.xml")


def test_too_many_members(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {f"part{n}.xml": b"<a/>" for n in range(11)})
    with pytest.raises(ArchiveBomb) as info:
        open_archive(path, LimitSettings(max_archive_members=10))
    assert info.value.details["members"] == 11


def test_total_unpacked_size(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {"a.bin": bytes(600), "b.bin": bytes(600)})
    with pytest.raises(ArchiveBomb):
        open_archive(path, LimitSettings(max_archive_bytes=1000))


def test_compression_ratio_of_a_big_member(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {"word/document.xml": b" " * 5_000_000})
    with pytest.raises(ArchiveBomb) as info:
        open_archive(path, LimitSettings())
    assert info.value.details["part"] == "word/document.xml" and info.value.details["ratio"] > 200
    # Small members compress as they like (a run of spaces in a tiny part is no bomb).
    open_archive(_zip(tmp_path / "b.zip", {"a.xml": b" " * 100_000}), LimitSettings()).close()


@pytest.mark.parametrize("name", ["/etc/passwd", "../evil.xml", "word/../../evil.xml", "C:evil", "a\\..\\b"])
def test_unsafe_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # ZipInfo cleans names it is given; the raw name is what a hostile file holds
        archive.writestr(info, b"x")
    with pytest.raises(ArchiveBomb):
        open_archive(path, LimitSettings())


def test_truncated_zip_is_corrupt(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {"a.bin": os.urandom(5000)})
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CorruptFile):
        open_archive(path, LimitSettings())


def test_xml_entities_are_refused_and_broken_xml_is_corrupt() -> None:
    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;">]><l>&b;</l>'
    with pytest.raises(ArchiveBomb):
        parse_xml(laughs, part="x.xml")
    with pytest.raises(CorruptFile):
        parse_xml(b"<a><b></a>", part="x.xml")
    external = b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://example.invalid/a.dtd"><a>ok</a>'
    assert parse_xml(external).text == "ok"  # the DTD is neither fetched nor loaded


def test_a_zip_claiming_gigabytes_is_refused_from_its_directory(tmp_path: Path) -> None:
    """A 200-byte member whose directory entry claims 4 GB unpacked: refused before anything inflates."""
    path = _zip(tmp_path / "a.docx", {"word/document.xml": b"<w:document/>" * 10})
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the member's central directory entry
    data[central + 24 : central + 28] = (4_000_000_000).to_bytes(4, "little")  # its uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveBomb) as info:
        open_archive(path, LimitSettings())
    assert info.value.details.get("max_bytes") == LimitSettings().max_archive_bytes
