"""Which reader reads which office kind, and reading a file with it.

Readers are imported when first used: a worker that never sees a spreadsheet never imports the XLSX reader.
Password-protected OOXML files are decrypted first (msoffcrypto-tool) and read by the reader of what they
hold; legacy binary files (DOC, XLS, PPT, RTF) are converted by LibreOffice in a sandbox
(:mod:`pagemill.documents.office.legacy`) and read as the DOCX, XLSX or PPTX it writes.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.document import OfficeDocument, Reader, ReadOptions
from pagemill.errors import CorruptFile, UnsupportedType
from pagemill.settings import LimitSettings

# kind -> (module under pagemill.documents.office, function)
_READERS: Final[dict[DocumentKind, tuple[str, str]]] = {
    DocumentKind.DOCX: ("docx", "read_docx"),
    DocumentKind.PPTX: ("pptx", "read_pptx"),
    DocumentKind.XLSX: ("xlsx", "read_xlsx"),
    DocumentKind.ODT: ("odf", "read_odt"),
    DocumentKind.ODP: ("odf", "read_odp"),
    DocumentKind.ODS: ("odf", "read_ods"),
    DocumentKind.HTML: ("html", "read_html"),
    DocumentKind.EPUB: ("epub", "read_epub"),
    DocumentKind.EML: ("eml", "read_eml"),
}


def reader_for(kind: DocumentKind) -> Reader:
    """The reader of ``kind`` (an office kind that is neither encrypted nor legacy)."""
    try:
        module_name, function = _READERS[kind]
    except KeyError:
        raise UnsupportedType(detected=kind.value) from None
    module = importlib.import_module(f"pagemill.documents.office.{module_name}")
    reader: Reader = getattr(module, function)
    return reader


def read_office(
    path: Path, kind: DocumentKind, options: ReadOptions, limits: LimitSettings
) -> OfficeDocument:
    """Read the office file at ``path`` into pages (every page; hidden ones flagged)."""
    if kind is DocumentKind.ENCRYPTED_OOXML:
        from pagemill.documents.office.encrypted import decrypted_copy

        with tempfile.TemporaryDirectory(prefix="pagemill-office-") as folder:
            plain = decrypted_copy(path, options.password, Path(folder), limits)
            return _read_converted(plain, options, limits)
    if kind.is_legacy:
        return _read_converted(_converted_legacy(path, kind, limits), options, limits)
    return reader_for(kind)(path, options, limits)


_CONVERTED_KEPT = 16


def _converted_legacy(path: Path, kind: DocumentKind, limits: LimitSettings) -> Path:
    """The OOXML file LibreOffice makes of the legacy file at ``path``, kept in a folder of this host's temp
    directory by the file's path, size and modification time: the probe (a child process) converts it, and
    the worker that reads its pages next finds the conversion done (1-3 s of LibreOffice saved per job).
    Only the newest few conversions are kept."""
    from pagemill.documents.office.legacy import convert_legacy

    stat = path.stat()
    name = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{kind}".encode()).hexdigest()
    cache = Path(tempfile.gettempdir()) / "pagemill-converted"
    cache.mkdir(mode=0o700, exist_ok=True)
    kept = cache / name
    if kept.is_file():
        return kept
    with tempfile.TemporaryDirectory(prefix="pagemill-office-") as folder:
        converted = convert_legacy(path, kind, Path(folder), limits)
        partial = cache / f".{name}.{os.getpid()}"
        shutil.copyfile(converted, partial)
        partial.replace(kept)  # atomic: a reader never sees half a file
    try:
        for old in sorted(cache.iterdir(), key=lambda p: p.stat().st_mtime)[:-_CONVERTED_KEPT]:
            old.unlink(missing_ok=True)
    except FileNotFoundError:
        pass  # another process cleaned up at the same time
    return kept


def _read_converted(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read a file made from the upload (decrypted, converted): its kind sniffed again from its content, and
    its pictures loaded before the folder holding it goes."""
    with path.open("rb") as fileobj:
        try:
            kind = sniff_file(fileobj)
        except UnsupportedType as exc:
            raise CorruptFile("The document's content is not a document.", reason="inner_type") from exc
    if kind not in (DocumentKind.DOCX, DocumentKind.XLSX, DocumentKind.PPTX):
        raise CorruptFile("The document's content is not a document.", reason="inner_type")
    document = reader_for(kind)(path, options, limits)
    loader = document.image_loader
    if loader is not None:
        images = {
            image.ref: loader(image.ref) for page in document.pages for image in page.images() if image.ref
        }
        document.image_loader = images.__getitem__
    return document
