"""The EPUB reader: each document of the book's reading order (its spine) is a page of kind "chapter".

The zip is opened through :func:`open_archive` (bomb and trap checks); ``META-INF/container.xml`` names the
package (OPF), whose spine orders the chapters. Items marked ``linear="no"`` (covers, pop-up notes) are
read too, after the linear ones, so nothing of the book is lost. A chapter is titled by its entry in the
table of contents (navigation document or NCX), else by its first heading. Chapters are XHTML read by
:func:`html_blocks`; a picture's ref is its member path in the zip (``data:N`` for ``data:`` URIs), and a
spine item that is itself a picture is a page holding it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from pagemill.documents.office.archive import SafeZip, open_archive
from pagemill.documents.office.blocks import Block, Heading, Image, OfficePage
from pagemill.documents.office.document import OfficeDocument, ReadOptions
from pagemill.documents.office.epub_package import ManifestItem, read_package
from pagemill.documents.office.html_blocks import html_blocks
from pagemill.errors import CorruptFile, TooManyPages
from pagemill.settings import LimitSettings

_XHTML_TYPES: Final = frozenset({"application/xhtml+xml", "text/html", "application/xml", "text/xml"})


def read_epub(path: Path, options: ReadOptions, limits: LimitSettings) -> OfficeDocument:
    """Read the EPUB at ``path`` into one page per spine document."""
    del options  # an e-book has no hidden or optional content
    images: dict[str, bytes] = {}
    pictures: set[str] = set()
    with open_archive(path, limits) as book:
        package = read_package(book)
        if len(package.spine) > limits.max_pages:
            raise TooManyPages(pages=len(package.spine), max_pages=limits.max_pages)
        pages = []
        for item in package.spine:
            page = _chapter(book, item, package.titles.get(item.path), images, limits)
            if page is None:
                continue
            for image in page.images():
                if image.ref is not None and not image.ref.startswith("data:"):
                    pictures.add(image.ref)
            pages.append(page)
    if not pages:
        raise CorruptFile("The e-book has no chapter that can be read.", reason="no_chapters")
    return OfficeDocument(pages=pages, reader="epub", image_loader=_loader(path, limits, images, pictures))


def _chapter(
    book: SafeZip, item: ManifestItem, toc_title: str | None, images: dict[str, bytes], limits: LimitSettings
) -> OfficePage | None:
    """The page of one spine item (None for an item that is neither a document nor a picture)."""
    if item.media_type.startswith("image/") and item.media_type != "image/svg+xml":
        if not book.has(item.path):
            return None
        return OfficePage(kind="chapter", blocks=[Image(ref=item.path, name=item.path.rsplit("/", 1)[-1])])
    if item.media_type not in _XHTML_TYPES and not item.path.lower().endswith((".xhtml", ".html", ".htm")):
        return None
    data = book.read(item.path)  # CorruptFile when the spine names a missing chapter
    blocks, html_title = html_blocks(
        data, base_ref=item.path, limits=limits, images=images, xhtml=item.media_type != "text/html"
    )
    for block in blocks:
        if (
            isinstance(block, Image)
            and block.ref is not None
            and not block.ref.startswith("data:")
            and not book.has(block.ref)
        ):
            block.ref = None  # a picture the book does not hold (remote, cid:, missing)
    title = toc_title or _first_heading(blocks) or html_title
    return OfficePage(kind="chapter", blocks=blocks, title=title)


def _first_heading(blocks: list[Block]) -> str | None:
    return next((block.text for block in blocks if isinstance(block, Heading) and block.text), None)


def _loader(
    path: Path, limits: LimitSettings, images: dict[str, bytes], pictures: set[str]
) -> Callable[[str], bytes]:
    """Pictures by ref: ``data:N`` from memory, members from the zip (opened again, checked again); only
    the refs the book's pages hold."""

    def load(ref: str) -> bytes:
        if ref in images:
            return images[ref]
        if ref not in pictures:
            raise CorruptFile("A picture of the document cannot be read.", reason="image_missing")
        with open_archive(path, limits) as book:
            return book.read(ref)

    return load
