"""Password-protected OOXML: a DOCX encrypted at test time with msoffcrypto-tool (agile encryption, as Office
writes it) is decrypted and read; no password, a wrong one, damage and an oversized package are refused
with their own errors."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import olefile
import pytest
from msoffcrypto.format.ooxml import OOXMLFile

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.blocks import Heading, Paragraph
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.encrypted import decrypted_copy
from pagemill.documents.office.readers import read_office
from pagemill.errors import ArchiveBomb, CorruptFile, EncryptedFile, WrongPassword
from pagemill.settings import LimitSettings

PASSWORD = "s3cret pass"


@pytest.fixture
def encrypted_docx(tmp_path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Locked report", 1)
    document.add_paragraph("Only for those with the password.")
    plain = io.BytesIO()
    document.save(plain)
    plain.seek(0)
    encrypted = io.BytesIO()
    OOXMLFile(plain).encrypt(PASSWORD, encrypted)
    path = tmp_path / "locked.docx"
    path.write_bytes(encrypted.getvalue())
    return path


def test_the_fixture_is_what_office_writes(encrypted_docx: Path) -> None:
    with encrypted_docx.open("rb") as fileobj:
        assert sniff_file(fileobj) is DocumentKind.ENCRYPTED_OOXML


def test_decrypted_copy_is_the_plain_package(encrypted_docx: Path, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    plain = decrypted_copy(encrypted_docx, PASSWORD, folder, LimitSettings())
    assert plain == folder / "decrypted"
    assert plain.read_bytes()[:2] == b"PK"


def test_read_office_decrypts_and_reads_the_document(encrypted_docx: Path) -> None:
    document = read_office(
        encrypted_docx, DocumentKind.ENCRYPTED_OOXML, ReadOptions(password=PASSWORD), LimitSettings()
    )
    assert document.reader == "docx"
    assert document.pages[0].blocks == [
        Heading("Locked report", 1),
        Paragraph("Only for those with the password."),
    ]


def test_no_password_is_encrypted_file(encrypted_docx: Path, tmp_path: Path) -> None:
    for password in (None, ""):
        with pytest.raises(EncryptedFile) as error:
            decrypted_copy(encrypted_docx, password, tmp_path, LimitSettings())
        assert error.value.code == "ENCRYPTED_FILE"


def test_wrong_password(encrypted_docx: Path, tmp_path: Path) -> None:
    with pytest.raises(WrongPassword) as error:
        decrypted_copy(encrypted_docx, "not it", tmp_path, LimitSettings())
    assert error.value.code == "WRONG_PASSWORD"
    assert not (tmp_path / "decrypted").exists()


def test_truncated_file_is_corrupt(encrypted_docx: Path, tmp_path: Path) -> None:
    encrypted_docx.write_bytes(encrypted_docx.read_bytes()[:1000])
    with pytest.raises(CorruptFile):
        decrypted_copy(encrypted_docx, PASSWORD, tmp_path, LimitSettings())


def test_damaged_encryption_info_is_corrupt(encrypted_docx: Path, tmp_path: Path) -> None:
    with olefile.OleFileIO(str(encrypted_docx), write_mode=True) as ole:
        size = ole.get_size("EncryptionInfo")
        ole.write_stream("EncryptionInfo", b"\x09\x00\x07\x00" + b"\xff" * (size - 4))
    with pytest.raises(CorruptFile) as error:
        decrypted_copy(encrypted_docx, PASSWORD, tmp_path, LimitSettings())
    assert error.value.code == "CORRUPT_FILE"


def test_not_a_compound_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "plain.docx"
    path.write_bytes(b"PK\x03\x04 not encrypted at all")
    with pytest.raises(CorruptFile):
        decrypted_copy(path, PASSWORD, tmp_path, LimitSettings())


def test_package_over_the_archive_limit_is_a_bomb(encrypted_docx: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveBomb):
        decrypted_copy(encrypted_docx, PASSWORD, tmp_path, LimitSettings(max_archive_bytes=1000))
