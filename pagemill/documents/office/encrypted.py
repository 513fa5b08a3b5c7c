"""Decrypt a password-protected DOCX, XLSX or PPTX into a plain copy that the format's reader opens.

Office saves a password-protected OOXML file as an OLE2 compound file: an ``EncryptionInfo`` stream (how the
key is derived from the password) and an ``EncryptedPackage`` stream (the AES-encrypted zip, led by its
plain size). msoffcrypto-tool derives the key and decrypts; this module checks what it can before spending
work on it (the declared plain size against ``limits.max_archive_bytes``) and turns the library's errors into
the client's: no password, a wrong one, or a damaged file.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Final

import olefile
from msoffcrypto import exceptions as crypto_errors
from msoffcrypto.format.ooxml import OOXMLFile

from pagemill.errors import ArchiveBomb, CorruptFile, EncryptedFile, WrongPassword
from pagemill.settings import LimitSettings

_PACKAGE_STREAM: Final = "EncryptedPackage"
_INFO_STREAM: Final = "EncryptionInfo"


def decrypted_copy(path: Path, password: str | None, folder: Path, limits: LimitSettings) -> Path:
    """Decrypt the password-protected OOXML file at ``path`` into ``folder``/"decrypted" and return that path.

    EncryptedFile without a password, WrongPassword when the password does not open it, CorruptFile when the
    file is damaged or uses an encryption msoffcrypto cannot read (IRM, extensible), ArchiveBomb when the
    plain package would be larger than ``limits.max_archive_bytes``.
    """
    if not password:
        raise EncryptedFile()
    with path.open("rb") as source:
        _check_container(source, limits)
        try:
            office = OOXMLFile(source)
        except (
            crypto_errors.FileFormatError,
            crypto_errors.DecryptionError,
            crypto_errors.ParseError,
        ) as exc:
            raise CorruptFile("The encrypted document cannot be read.", reason="encryption_info") from exc
        except (OSError, ValueError, KeyError, IndexError, struct.error) as exc:
            # olefile and the EncryptionInfo parsers fail with plain Python errors on damaged input.
            raise CorruptFile("The encrypted document is damaged.", reason="encryption_info") from exc
        if not office.is_encrypted():
            raise CorruptFile("The encrypted document cannot be read.", reason="not_encrypted")
        plain = _decrypt(office, password)
    if len(plain) > limits.max_archive_bytes:
        raise ArchiveBomb(
            "The decrypted document is larger than allowed.", max_bytes=limits.max_archive_bytes
        )
    target = folder / "decrypted"
    target.write_bytes(plain)
    return target


def _check_container(source: io.BufferedReader, limits: LimitSettings) -> None:
    """Refuse a file that is not an encrypted package, or whose package declares a plain size over the cap,
    before deriving a key (which costs up to a hundred thousand hash rounds)."""
    try:
        if not olefile.isOleFile(source):
            raise CorruptFile("The encrypted document is not a compound file.", reason="ole")
        source.seek(0)
        ole = olefile.OleFileIO(source)
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise CorruptFile("The encrypted document is damaged.", reason="ole") from exc
    try:
        if not (ole.exists(_PACKAGE_STREAM) and ole.exists(_INFO_STREAM)):
            raise CorruptFile("The encrypted document has no encrypted package.", reason="ole")
        with ole.openstream(_PACKAGE_STREAM) as stream:
            header = stream.read(8)
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise CorruptFile("The encrypted document is damaged.", reason="ole") from exc
    finally:
        ole.close()
    if len(header) < 8:
        raise CorruptFile("The encrypted document is damaged.", reason="package_size")
    (declared,) = struct.unpack("<Q", header)
    if declared > limits.max_archive_bytes:
        raise ArchiveBomb(
            "The decrypted document is larger than allowed.", max_bytes=limits.max_archive_bytes
        )
    source.seek(0)


def _decrypt(office: OOXMLFile, password: str) -> bytes:
    """The plain package bytes; WrongPassword when the key does not verify or the output is not a zip."""
    output = io.BytesIO()
    try:
        office.load_key(password=password, verify_password=True)
        office.decrypt(output)
    except crypto_errors.InvalidKeyError:
        raise WrongPassword() from None
    except crypto_errors.DecryptionError as exc:
        raise CorruptFile("The encrypted document cannot be decrypted.", reason="decryption") from exc
    except (OSError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:
        # Damaged key material or a truncated package surface as plain errors from the crypto code.
        raise CorruptFile("The encrypted document is damaged.", reason="decryption") from exc
    return output.getvalue()
