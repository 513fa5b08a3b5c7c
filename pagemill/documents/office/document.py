"""An office document read into pages, the options that shape the reading, and the reader interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pagemill.documents.office.blocks import OfficePage
from pagemill.errors import CorruptFile
from pagemill.settings import LimitSettings

TableFormat = Literal["markdown", "html", "auto"]
AttachmentMode = Literal["list", "convert"]


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What a job asks of an office reader (from its JobOptions)."""

    speaker_notes: bool = True
    """Slides: speaker notes under each slide."""
    formulas: bool = False
    """Sheets: a formula cell shows its formula (``=SUM(A1:A3)``) instead of its cached value."""
    hidden: bool = False
    """Hidden sheets and slides are pages too (flagged ``hidden``); skipped by default."""
    attachments: AttachmentMode = "list"
    """E-mail: attachments listed, or also converted (those of a supported office or text type)."""
    password: str | None = field(default=None, repr=False)
    """Opens a password-protected OOXML file."""


@dataclass(slots=True)
class OfficeDocument:
    """Pages of an office document, and the bytes of its pictures by ``Image.ref``."""

    pages: list[OfficePage]
    reader: str
    """Which reader made it ('docx', 'pptx', 'xlsx', ...): the page results' ``settings.reader``."""
    image_loader: Callable[[str], bytes] | None = None

    def image_bytes(self, ref: str) -> bytes:
        """The stored bytes of the picture ``ref``; CorruptFile when the file does not hold them."""
        if self.image_loader is None:
            raise CorruptFile("A picture of the document cannot be read.", reason="image_missing")
        return self.image_loader(ref)


class Reader(Protocol):
    """Reads one office format. Readers parse untrusted bytes: archives are opened through
    :func:`pagemill.documents.office.archive.open_archive` (bomb and trap checks), XML through defusedxml or
    lxml with entities and network off, and every count that could grow without bound is capped by
    ``limits`` (cells, members, sizes), raising a specific PagemillError."""

    def __call__(self, path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
        """Read the file at ``path`` into pages (every page, hidden ones flagged; see ReadOptions)."""
        ...
