"""The HTML reader: a web page or HTML file as one page of blocks (kind "document", titled by ``<title>``).

The mapping of elements to blocks is :func:`html_blocks` (shared with the EPUB and e-mail readers).
Pictures are kept only when their bytes are in the file (``data:`` URIs, refs ``data:N``); linked ones,
relative or remote, are listed without a ref: nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pagemill.documents.office.blocks import Image, OfficePage
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.html_blocks import html_blocks
from pagemill.errors import CorruptFile
from pagemill.settings import LimitSettings

__all__ = ["html_blocks", "read_html"]


def read_html(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read the HTML file at ``path`` into one page."""
    del options  # nothing in an HTML page is hidden or optional
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptFile("The document cannot be read.", reason="io") from exc
    images: dict[str, bytes] = {}
    blocks, title = html_blocks(data, base_ref=None, limits=limits, images=images)
    for block in blocks:
        if isinstance(block, Image) and block.ref is not None and block.ref not in images:
            block.ref = None  # a cid: picture means nothing outside an e-mail
    page = OfficePage(kind="document", blocks=blocks, title=title)
    return OfficeDocument(pages=[page], reader="html", image_loader=stored_images(images))


def stored_images(images: dict[str, bytes]) -> Callable[[str], bytes]:
    """An image loader over pictures decoded while reading; CorruptFile for any other ref."""

    def load(ref: str) -> bytes:
        try:
            return images[ref]
        except KeyError:
            raise CorruptFile("A picture of the document cannot be read.", reason="image_missing") from None

    return load
