"""Reading one page of an office document: its structure as it is, and the text in its pictures through the
job's OCR engine chain (a scanned page pasted into a DOCX is not lost). No database here.

A page whose pictures are to be read (``ocr_mode`` auto or ocr, and pictures big enough to hold text) is not
finished by the text pass: it goes to the pool of the OCR engine, as a PDF page without a text layer does,
and :func:`read_pictures` reads it there.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from PIL import Image as PilImage

from pagemill import deadlines
from pagemill.documents.office.blocks import Image, OfficePage
from pagemill.documents.office.render import page_blocks, page_markdown, page_text
from pagemill.documents.office.source import OfficeSource
from pagemill.engines.base import PageResult
from pagemill.engines.registry import get_engine
from pagemill.errors import CorruptFile, EngineFailed, EngineUnavailable, ImageTooLarge
from pagemill.jobs.options import JobOptions, OcrMode
from pagemill.metrics import FALLBACKS
from pagemill.settings import Settings

log = logging.getLogger(__name__)

MIN_PICTURE_SIDE = 48
"""Pictures smaller than this on either side (icons, bullets, rules) hold no text worth an OCR call."""


def structured_page(source: OfficeSource, index: int, options: JobOptions) -> PageResult | None:
    """The page as its reader found it; None when its pictures are to be read first
    (:func:`read_pictures`)."""
    page = source.office_page(index)
    if options.ocr_mode != OcrMode.TEXT_LAYER and _pictures_to_read(source, page):
        return None
    return _result(source, page, options, {})


def read_pictures(
    source: OfficeSource,
    index: int,
    chain: list[str],
    settings: Settings,
    options: JobOptions,
    start: int = 0,
) -> PageResult:
    """The page with the text of each of its pictures read by the first engine of ``chain[start:]`` that
    succeeds (the last one's EngineUnavailable is raised: the page waits for its engines). A picture that
    cannot be decoded is left unread and named in the page's settings; it does not fail the page."""
    page = source.office_page(index)
    read: list[dict[str, Any]] = []
    unread: list[dict[str, Any]] = []
    blocks = list(page.blocks)
    started = time.perf_counter()
    for position, block in enumerate(blocks):
        if not isinstance(block, Image) or block.ref is None:
            continue
        try:
            picture = source.picture(block.ref)
        except (CorruptFile, ImageTooLarge) as exc:
            unread.append({"picture": block.ref, "code": exc.code})
            continue
        if min(picture.size) < MIN_PICTURE_SIDE:
            continue
        text, engine, fallbacks = _read_picture(picture, chain[start:] or chain[-1:], index, settings)
        # A copy: the page belongs to the document kept for the next chunk of pages.
        blocks[position] = dataclasses.replace(block, text=text.strip() or None)
        read.append(
            {"picture": block.ref, "engine": engine, **({"fallbacks": fallbacks} if fallbacks else {})}
        )
    result = _result(source, dataclasses.replace(page, blocks=blocks), options, {"pictures": read})
    if unread:
        result.settings["pictures_unread"] = unread
    result.timings_ms["pictures"] = (time.perf_counter() - started) * 1000
    return result


def _read_picture(
    picture: PilImage.Image, candidates: list[str], index: int, settings: Settings
) -> tuple[str, str, list[Any]]:
    fallbacks: list[dict[str, Any]] = []
    for position, name in enumerate(candidates):
        deadlines.check()
        engine = get_engine(name, settings)
        max_side = getattr(engine, "image_max_side", None)
        image = picture
        if max_side is not None and max(picture.size) > max_side:
            image = picture.copy()
            image.thumbnail((max_side, max_side))
        try:
            return engine.recognize(image).text, name, fallbacks
        except (EngineFailed, EngineUnavailable) as exc:
            if position == len(candidates) - 1:
                raise
            fallbacks.append({"engine": name, "code": exc.code, "reason": exc.details.get("reason")})
            FALLBACKS.labels(engine=name, reason=str(exc.details.get("reason") or exc.code)).inc()
            log.warning("fallback: page %d picture: engine %s failed (%s)", index + 1, name, exc.code)
    raise AssertionError("unreachable: the loop returns or raises")


def _pictures_to_read(source: OfficeSource, page: OfficePage) -> bool:
    """True when a picture of the page is big enough to hold text (its header says; nothing decoded)."""
    for image in page.images():
        assert image.ref is not None
        try:
            size = source.picture_size(image.ref)
        except (CorruptFile, ImageTooLarge):
            continue
        if min(size) >= MIN_PICTURE_SIDE:
            return True
    return False


def _result(source: OfficeSource, page: OfficePage, options: JobOptions, extra: dict[str, Any]) -> PageResult:
    settings: dict[str, Any] = {"reader": source.reader, "page_kind": page.kind, **extra}
    if page.title:
        settings["title"] = page.title
    if page.hidden:
        settings["hidden"] = True
    return PageResult(
        text=page_text(page),
        markdown=page_markdown(page, options.table_format.value),
        engine="office",
        settings=settings,
        blocks=page_blocks(page),
    )
