"""Converting an e-mail's attachments (``attachments="convert"``): office documents read in process.

An attachment is written to a private temporary folder, its kind sniffed from its content (never its name
or declared type), and read by the reader of that kind when it is one read in process (OOXML, ODF, HTML,
EPUB, e-mail); PDFs, pictures, encrypted and legacy files stay listed only. A forwarded message is read
with its own attachments listed only, so conversion goes one level deep and never further. Pictures of a
converted attachment are loaded before its folder goes (refs ``att<N>:<its ref>``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Final

from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.office.blocks import Block, Heading, Image, Paragraph
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.readers import reader_for
from pagemill.errors import InputError
from pagemill.settings import LimitSettings

MAX_CONVERTED: Final = 50
"""Attachments converted per message; further ones are listed only."""
CONVERTIBLE: Final = frozenset(
    {
        DocumentKind.DOCX,
        DocumentKind.PPTX,
        DocumentKind.XLSX,
        DocumentKind.ODT,
        DocumentKind.ODP,
        DocumentKind.ODS,
        DocumentKind.HTML,
        DocumentKind.EPUB,
        DocumentKind.EML,
    }
)


def attachment_blocks(
    name: str,
    data: bytes,
    index: int,
    options: ReadOptions,
    limits: LimitSettings,
    images: dict[str, bytes],
) -> list[Block]:
    """The blocks of attachment ``index`` under a heading naming it; nothing when it is not a document
    read in process; a note when it is one that cannot be read (damaged, a bomb, encrypted)."""
    heading = Heading(f"Attachment: {name}", 2)
    with tempfile.TemporaryDirectory(prefix="pagemill-eml-") as folder:
        file = Path(folder) / "attachment"
        file.write_bytes(data)
        try:
            with file.open("rb") as fileobj:
                kind = sniff_file(fileobj)
        except InputError:
            return []
        if kind not in CONVERTIBLE:
            return []
        try:
            document = reader_for(kind)(file, dataclasses.replace(options, attachments="list"), limits)
            blocks = _document_blocks(document, index, options, limits, images)
        except InputError as exc:
            return [heading, Paragraph(f"The attachment could not be read: {exc.message}")]
    return [heading, *blocks]


def _document_blocks(
    document: OfficeDocument,
    index: int,
    options: ReadOptions,
    limits: LimitSettings,
    images: dict[str, bytes],
) -> list[Block]:
    """The blocks of every page read (hidden pages only when asked), each page titled when there are
    several; pictures copied into ``images`` within ``limits.max_upload_bytes`` in all."""
    pages = [page for page in document.pages if options.hidden or not page.hidden]
    left = limits.max_upload_bytes - sum(len(data) for data in images.values())
    blocks: list[Block] = []
    for page in pages:
        if len(pages) > 1 and page.title:
            blocks.append(Heading(page.title, 3))
        for block in page.blocks:
            if isinstance(block, Image) and block.ref is not None:
                data = _picture(document, block.ref)
                if data is None or len(data) > left:
                    block.ref = None
                else:
                    left -= len(data)
                    block.ref = f"att{index}:{block.ref}"
                    images[block.ref] = data
            blocks.append(block)
    return blocks


def _picture(document: OfficeDocument, ref: str) -> bytes | None:
    try:
        return document.image_bytes(ref)
    except InputError:
        return None
