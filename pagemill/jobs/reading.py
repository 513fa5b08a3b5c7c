"""Reading one page: the text layer where it is usable, CPU OCR otherwise. No database here."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pagemill.documents.source import DocumentSource
from pagemill.engines.base import PageResult
from pagemill.engines.registry import get_ocr_engine
from pagemill.engines.text_layer import read_text_layer
from pagemill.jobs.options import JobOptions, OcrMode
from pagemill.settings import Settings


def read_page_text_layer(source: DocumentSource, index: int, settings: Settings) -> PageResult | None:
    """The page's text layer if it is usable, else None (the page needs OCR). Images have none."""
    if not source.is_pdf:
        return None
    started = time.perf_counter()
    result = read_text_layer(source.pdf_page(index), min_chars=settings.ocr.text_layer_min_chars)
    if result is not None:
        result.timings_ms.setdefault("text_layer", (time.perf_counter() - started) * 1000)
    return result


def empty_text_layer_result() -> PageResult:
    """The result of a page with no usable text layer when OCR is off (ocr_mode=text_layer)."""
    return PageResult(text="", markdown="", engine="text_layer", settings={"usable_text_layer": False})


def ocr_page(source: DocumentSource, index: int, engine_name: str | None, settings: Settings) -> PageResult:
    """Render the page and read it with the chosen CPU OCR engine."""
    started = time.perf_counter()
    image = source.render(index, dpi=settings.ocr.dpi)
    rendered = time.perf_counter()
    engine = get_ocr_engine(engine_name or settings.ocr.engine, settings.ocr)
    result = engine.recognize(image)
    result.timings_ms["render"] = (rendered - started) * 1000
    result.settings.setdefault("dpi", settings.ocr.dpi)
    result.settings.setdefault("image_size", list(image.size))
    return result


def read_page(source: DocumentSource, index: int, options: JobOptions, settings: Settings) -> PageResult:
    """Read one page as a job with ``options`` would, in this process (text layer first unless ocr_mode=ocr;
    images are always OCR'd)."""
    started = time.perf_counter()
    result = None
    if options.ocr_mode != OcrMode.OCR and source.is_pdf:
        result = read_page_text_layer(source, index, settings)
        if result is None and options.ocr_mode == OcrMode.TEXT_LAYER:
            result = empty_text_layer_result()
    if result is None:
        result = ocr_page(source, index, options.engine, settings)
    result.timings_ms["total"] = (time.perf_counter() - started) * 1000
    return result


def read_pages(source: DocumentSource, options: JobOptions, settings: Settings) -> Iterator[PageResult]:
    """Every page of ``source`` in order (`pagemill convert` and the quality tests)."""
    for index in range(source.page_count):
        yield read_page(source, index, options, settings)
