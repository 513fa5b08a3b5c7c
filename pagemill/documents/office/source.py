"""An office document opened for its pages, as :class:`pagemill.documents.source.DocumentSource` gives PDF
and image pages to the job's workers.

The whole file is read once per process and kept (a few documents, by path, size and modification time):
a chunk of pages of a 200-slide deck is one reading, not one per slide. The sandboxed probe read the same
file under its memory and CPU caps first, so reading it here again is known to stay within them.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.blocks import OfficePage
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.readers import read_office
from pagemill.documents.source import DocumentSource, check_frame_size, configure_pillow, to_reading_mode
from pagemill.errors import CorruptFile, ImageTooLarge
from pagemill.settings import LimitSettings

_KEPT_DOCUMENTS = 4
_kept: OrderedDict[tuple[str, int, int, str, ReadOptions], OfficeDocument] = OrderedDict()
_kept_lock = threading.Lock()


def read_cached(
    path: Path, kind: DocumentKind, options: ReadOptions, limits: LimitSettings
) -> OfficeDocument:
    """The document at ``path`` read with ``options``: from this process's few kept documents, or read now."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, kind.value, options)
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    document = read_office(path, kind, options, limits)
    with _kept_lock:
        _kept[key] = document
        while len(_kept) > _KEPT_DOCUMENTS:
            _kept.popitem(last=False)
    return document


def visible_pages(document: OfficeDocument, options: ReadOptions) -> list[OfficePage]:
    """The pages a job reads: every page, or every page but the hidden ones (the default)."""
    return [page for page in document.pages if options.hidden or not page.hidden]


class OfficeSource(DocumentSource):
    """Pages of an office document: structured content, and pictures decoded on request."""

    def __init__(self, path: Path, kind: DocumentKind, options: ReadOptions, limits: LimitSettings) -> None:
        self.kind = kind
        self._limits = limits
        self.document = read_cached(path, kind, options, limits)
        self._pages = visible_pages(self.document, options)
        self.page_count = len(self._pages)

    @property
    def reader(self) -> str:
        """The reader that read the document ('docx', 'xlsx', ...)."""
        return self.document.reader

    def office_page(self, index: int) -> OfficePage:
        """Page ``index`` (0-based, among the pages the job reads)."""
        self._check_index(index)
        return self._pages[index]

    def picture(self, ref: str) -> Image.Image:
        """The picture ``ref`` decoded upright in RGB or L, within the pixel cap; CorruptFile or
        ImageTooLarge for pictures that cannot be read."""
        configure_pillow(self._limits)
        data = self.document.image_bytes(ref)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
                check_frame_size(image, self._limits)
                image.load()
                return to_reading_mode(ImageOps.exif_transpose(image) or image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(max_pixels=self._limits.max_image_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise CorruptFile("A picture in the document cannot be decoded.", picture=ref) from None

    def picture_size(self, ref: str) -> tuple[int, int]:
        """The picture's size from its header (nothing decoded); CorruptFile when it cannot be read."""
        try:
            with Image.open(io.BytesIO(self.document.image_bytes(ref))) as image:
                width, height = image.size
                return int(width), int(height)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            raise CorruptFile("A picture in the document cannot be decoded.", picture=ref) from None

    def render(self, index: int, dpi: int, max_side: int | None = None) -> Image.Image:
        """Office pages are not rendered: their pictures are read one by one (see :meth:`picture`)."""
        raise TypeError("office pages have no page image")

    def close(self) -> None:
        """Nothing to release: the kept document stays for the next chunk of pages."""
