"""Reading one page: the text layer where it is usable, CPU OCR otherwise. No database here."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from PIL import Image

from pagemill import deadlines
from pagemill.documents.audio.source import AudioSource
from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.source import OfficeSource
from pagemill.documents.render_pool import RenderedPage, SourceMissing, active_render_pool
from pagemill.documents.source import PDFIUM_LOCK, DocumentSource, SourceOrigin
from pagemill.engines.audio_registry import AUDIO_ENGINE_NAMES, audio_engine_healthy, require_audio_configured
from pagemill.engines.base import OcrEngine, PageResult
from pagemill.engines.page_image import EncodedImageReader, ImageSpec, encode_image
from pagemill.engines.registry import ENGINE_NAMES, engine_healthy, get_engine, require_configured
from pagemill.engines.text_layer import read_text_layer
from pagemill.errors import EngineFailed, EngineUnavailable
from pagemill.jobs import audio_pages, office_pages
from pagemill.jobs.options import JobOptions, OcrMode
from pagemill.metrics import FALLBACKS
from pagemill.settings import Settings

log = logging.getLogger(__name__)


def read_page_text_layer(source: DocumentSource, index: int, settings: Settings) -> PageResult | None:
    """The page's text layer if it is usable, else None (the page needs OCR). Images have none."""
    if not source.is_pdf:
        return None
    started = time.perf_counter()
    with PDFIUM_LOCK:
        result = read_text_layer(source.pdf_page(index), min_chars=settings.ocr.text_layer_min_chars)
    if result is not None:
        result.timings_ms.setdefault("text_layer", (time.perf_counter() - started) * 1000)
    return result


def empty_text_layer_result() -> PageResult:
    """The result of a page with no usable text layer when OCR is off (ocr_mode=text_layer)."""
    return PageResult(text="", markdown="", engine="text_layer", settings={"usable_text_layer": False})


def configured_engines(settings: Settings) -> list[str]:
    """The engines pages may use under the configured defaults (health reports, GPU worker start-up)."""
    return engine_chain(JobOptions(), settings)


def engine_chain(options: JobOptions, settings: Settings, kind: DocumentKind | None = None) -> list[str]:
    """The engines a page needing OCR may try, in order: the job's (or the default) engine, then the
    configured fallbacks, at most ``engines.max_fallback_attempts`` of them. A recording's pieces have a
    chain of speech engines instead (pagemill.jobs.audio_pages.audio_chain)."""
    if kind is not None and kind.is_audio:
        return audio_pages.audio_chain(options, settings)
    first = options.engine or settings.engines.default
    rest = [name for name in dict.fromkeys(settings.engines.fallback) if name != first]
    return [first, *rest[: settings.engines.max_fallback_attempts]]


def require_engines_configured(
    options: JobOptions, settings: Settings, kind: DocumentKind | None = None
) -> None:
    """Refuse (EngineNotConfigured) a job whose OCR chain names a model engine without a server, before it
    is accepted: its pages could never be read. Jobs that never OCR (ocr_mode=text_layer) pass. A speech
    engine named by the job (its kind not known yet) must have its server; a recording's whole chain is
    checked when it is planned, with ``kind``."""
    if kind is not None and kind.is_audio:
        require_audio_configured(engine_chain(options, settings, kind), settings)
        return
    if options.engine in AUDIO_ENGINE_NAMES and options.engine not in ENGINE_NAMES:
        require_audio_configured([options.engine], settings)
        return
    if options.ocr_mode != OcrMode.TEXT_LAYER:
        require_configured(engine_chain(options, settings), settings)


def routed_start(chain: list[str], settings: Settings, kind: DocumentKind | None = None) -> int:
    """Where a page starts in ``chain``: the first engine that is healthy now (model servers are asked),
    so pages go to the GPU queue only while the GPU engine can take them; the last engine as a last resort."""
    audio = kind is not None and kind.is_audio
    for position, name in enumerate(chain):
        if audio_engine_healthy(name, settings) if audio else engine_healthy(name, settings):
            return position
    return len(chain) - 1


def ocr_page(
    source: DocumentSource,
    index: int,
    chain: list[str],
    settings: Settings,
    start: int = 0,
    options: JobOptions | None = None,
) -> PageResult:
    """Render the page (once per image the engines want) and read it with the first engine of
    ``chain[start:]`` that succeeds.

    Model engines (their ``image_spec`` says how they want the page) get it rendered and encoded by this
    process's render pool when it has one (a GPU worker: :mod:`pagemill.documents.render_pool`); CPU
    engines, and every engine in a process without a pool, get a PIL image rendered here.

    An engine that answers unusably (EngineFailed) or stays unavailable after its own retries
    (EngineUnavailable) hands the page to the next one; each such fallback is logged and recorded in the
    page's settings. The last engine's error is raised.

    An office page is not rendered: the text of each of its pictures is read (pagemill.jobs.office_pages),
    written as ``options`` ask.
    """
    if isinstance(source, OfficeSource):
        return office_pages.read_pictures(source, index, chain, settings, options or JobOptions(), start)
    if isinstance(source, AudioSource):
        return audio_pages.transcribe_piece(source, index, chain, settings, options or JobOptions(), start)
    fallbacks: list[dict[str, Any]] = []
    pages = _PageImages(source, index, settings)
    candidates = chain[start:] or chain[-1:]
    for position, name in enumerate(candidates):
        deadlines.check()  # a fallback is not started once the page's time is spent
        engine = get_engine(name, settings)
        try:
            result, size, render_ms = pages.read_with(engine)
        except (EngineFailed, EngineUnavailable) as exc:
            if position == len(candidates) - 1:
                raise
            fallbacks.append({"engine": name, "code": exc.code, "reason": exc.details.get("reason")})
            FALLBACKS.labels(engine=name, reason=str(exc.details.get("reason") or exc.code)).inc()
            log.warning(
                "fallback: page %d: engine %s failed (%s %s); trying %s",
                index + 1,
                name,
                exc.code,
                exc.details.get("reason"),
                candidates[position + 1],
            )
            continue
        result.timings_ms["render"] = render_ms
        result.settings.setdefault("dpi", settings.ocr.dpi)
        result.settings.setdefault("image_size", list(size))
        if fallbacks:
            result.settings["fallbacks"] = fallbacks
        return result
    raise AssertionError("unreachable: the loop returns or raises")


class _PageImages:
    """One page's images, each made once however many engines of the chain read it: PIL images by
    longest side (rendered here), encoded images by spec (from the render pool)."""

    def __init__(self, source: DocumentSource, index: int, settings: Settings) -> None:
        self._source = source
        self._index = index
        self._settings = settings
        # Any source may go through the pool that knows where it came from (open_source sets that).
        self._origin: SourceOrigin | None = getattr(source, "origin", None)
        self._pool = active_render_pool() if self._origin is not None else None
        self._images: dict[int | None, tuple[Image.Image, float]] = {}
        self._encoded: dict[ImageSpec, tuple[RenderedPage, float]] = {}

    def read_with(self, engine: OcrEngine) -> tuple[PageResult, tuple[int, int], float]:
        """Engine ``engine``'s reading of the page, the size of the image it read and the render time."""
        origin = self._origin
        if self._pool is not None and origin is not None and isinstance(engine, EncodedImageReader):
            spec = engine.image_spec
            if spec not in self._encoded:
                started = time.perf_counter()
                try:
                    rendered = self._pool.render(
                        origin,
                        self._index,
                        dpi=self._settings.ocr.dpi,
                        spec=spec,
                        limits=self._settings.limits,
                    )
                except SourceMissing:
                    rendered = self._render_here(spec)
                # What the page waited for its image: a free render process, the render and the encode.
                self._encoded[spec] = (rendered, (time.perf_counter() - started) * 1000)
            rendered, wait_ms = self._encoded[spec]
            result = engine.recognize_encoded(rendered.image, encode_ms=rendered.encode_ms)
            return result, rendered.image.size, wait_ms
        # Model engines read pages of a fixed size: render at it. CPU OCR wants the full ocr.dpi.
        max_side = getattr(engine, "image_max_side", None)
        if max_side not in self._images:
            started = time.perf_counter()
            image = self._source.render(self._index, dpi=self._settings.ocr.dpi, max_side=max_side)
            self._images[max_side] = (image, (time.perf_counter() - started) * 1000)
        image, render_ms = self._images[max_side]
        return engine.recognize(image), image.size, render_ms

    def _render_here(self, spec: ImageSpec) -> RenderedPage:
        """The page rendered and encoded in this thread, as a render process would have."""
        started = time.perf_counter()
        image = self._source.render(self._index, dpi=self._settings.ocr.dpi, max_side=spec.max_side)
        rendered = time.perf_counter()
        encoded = encode_image(image, spec)
        return RenderedPage(encoded, (rendered - started) * 1000, (time.perf_counter() - rendered) * 1000)


def text_pass(
    source: DocumentSource, index: int, options: JobOptions, settings: Settings
) -> PageResult | None:
    """What a page gives without OCR: its usable text layer, or an empty result when OCR is off
    (ocr_mode=text_layer); None when the page needs OCR (images always do; so does every page with
    ocr_mode=ocr). An office page gives its structure, or None when its pictures are to be read."""
    if isinstance(source, OfficeSource):
        return office_pages.structured_page(source, index, options)
    if options.ocr_mode == OcrMode.OCR or not source.is_pdf:
        return None
    result = read_page_text_layer(source, index, settings)
    if result is None and options.ocr_mode == OcrMode.TEXT_LAYER:
        return empty_text_layer_result()
    return result


def read_page(source: DocumentSource, index: int, options: JobOptions, settings: Settings) -> PageResult:
    """Read one page as a job with ``options`` would, in this process: the text pass, then OCR if needed."""
    started = time.perf_counter()
    result = text_pass(source, index, options, settings)
    if result is None:
        chain = engine_chain(options, settings, source.kind)
        result = ocr_page(source, index, chain, settings, options=options)
    result.timings_ms["total"] = (time.perf_counter() - started) * 1000
    return result


def read_pages(source: DocumentSource, options: JobOptions, settings: Settings) -> Iterator[PageResult]:
    """Every page of ``source`` in order (`pagemill convert` and the quality tests)."""
    for index in range(source.page_count):
        yield read_page(source, index, options, settings)
