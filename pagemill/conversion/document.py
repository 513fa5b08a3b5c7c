"""convert_document: one document read in this process exactly as the workers read it."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from pagemill.conversion.progress import NO_PROGRESS, ProgressCallback
from pagemill.conversion.result import ConversionResult, ConvertedPage, PageError
from pagemill.documents.audio.cutting import AudioCut
from pagemill.documents.audio.source import folder_audio_source
from pagemill.documents.kinds import DocumentKind, sniff_file
from pagemill.documents.probe import probe_document
from pagemill.documents.source import DocumentSource, open_source
from pagemill.errors import PagemillError, ProcessingError
from pagemill.jobs import reading
from pagemill.jobs.options import (
    JobOptions,
    check_engine_name,
    check_fits_kind,
    select_pages,
    validate_page_range,
)
from pagemill.settings import Settings, get_settings

log = logging.getLogger(__name__)


def convert_document(
    path: str | os.PathLike[str],
    options: JobOptions | None = None,
    *,
    password: str | None = None,
    progress: ProgressCallback = NO_PROGRESS,
    settings: Settings | None = None,
) -> ConversionResult:
    """Convert the document at ``path`` in this process, page by page, with the workers' code: its type
    sniffed from its bytes, opened and checked in the sandboxed probe under ``limits.*``, each page's text
    layer used where usable and OCR (the job's engine, then the configured fallbacks) elsewhere.

    ``options`` are a job's options (formats only matter to :meth:`ConversionResult.write`); ``settings``
    default to the process's (``PAGEMILL_*`` environment, ``PAGEMILL_CONFIG_FILE``). No database, broker
    or server is used.

    A page that cannot be read is a failed page in the result (``page.error``), as on the server. A document
    that cannot be read at all raises its :class:`~pagemill.errors.PagemillError` (``EMPTY_FILE``,
    ``UNSUPPORTED_TYPE``, ``CORRUPT_FILE``, ``ENCRYPTED_FILE``, ``WRONG_PASSWORD``, ``TOO_MANY_PAGES``,
    ``IMAGE_TOO_LARGE``, ``INVALID_PAGE_RANGE``, ``PROCESSING_TIMEOUT``), as do options that name an
    unknown or unconfigured engine (``VALIDATION_ERROR``, ``ENGINE_NOT_CONFIGURED``). A missing file raises
    ``FileNotFoundError``.
    """
    started = time.perf_counter()
    source_path = Path(path)
    settings = settings or get_settings()
    options = _checked(options or JobOptions(), settings)
    with source_path.open("rb") as f:
        kind: DocumentKind = sniff_file(f)
    check_fits_kind(options, kind)
    office = options.read_options()
    with ExitStack() as stack:
        audio = None
        if kind.is_audio:
            reading.require_engines_configured(options, settings, kind)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pagemill-pieces-")))
            audio = AudioCut(folder, float(settings.audio.max_audio_seconds), settings.audio.max_piece_s)
        info = probe_document(
            source_path, kind, password=password, limits=settings.limits, office=office, audio=audio
        )
        probed = time.perf_counter()
        source = (
            folder_audio_source(audio.folder, kind)
            if audio is not None
            else open_source(source_path, kind, password=password, limits=settings.limits, office=office)
        )
        with source:
            indices = select_pages(options.page_range, info.page_count)
            pages: list[ConvertedPage] = []
            for index in indices:
                progress.page_started(index + 1, len(indices))
                page = read_one_page(source, index, options, settings)
                pages.append(page)
                progress.page_completed(page, len(indices))
    finished = time.perf_counter()
    result = ConversionResult(
        path=source_path,
        kind=kind,
        page_count=info.page_count,
        pages=pages,
        timings_ms={
            "probe": (probed - started) * 1000,
            "pages": (finished - probed) * 1000,
            "total": (finished - started) * 1000,
        },
    )
    progress.conversion_completed(result)
    return result


def read_one_page(
    source: DocumentSource, index: int, options: JobOptions, settings: Settings
) -> ConvertedPage:
    """Read page ``index``; its error, as a worker would record it, when it cannot be read."""
    try:
        result = reading.read_page(source, index, options, settings)
    except PagemillError as exc:
        # Transient errors too (an engine server down after its retries and every fallback): a worker
        # would defer the page and try later; here the caller decides whether to run again.
        return ConvertedPage(index=index, state="failed", error=PageError(exc.code, exc.message, exc.details))
    except Exception:  # a parser failure on one page must not sink the document, as in the workers
        log.exception("page %d of %s failed", index + 1, source.origin.path if source.origin else "?")
        error = ProcessingError("This page could not be read.", page=index + 1)
        return ConvertedPage(
            index=index, state="failed", error=PageError(error.code, error.message, error.details)
        )
    return ConvertedPage(
        index=index,
        state="done",
        text=result.text,
        markdown=result.markdown,
        engine=result.engine,
        model=result.model,
        rotation=result.rotation,
        lines=list(result.lines),
        settings=result.settings,
        timings_ms=result.timings_ms,
        blocks=result.blocks,
        segments=result.segments,
    )


def _checked(options: JobOptions, settings: Settings) -> JobOptions:
    """The options as a submission would accept them: a known engine, a well-formed page range, and model
    engines in the OCR chain that have a server configured."""
    options = options.model_copy(
        update={
            "engine": check_engine_name(options.engine),
            "page_range": validate_page_range(options.page_range),
        }
    )
    reading.require_engines_configured(options, settings)
    return options
