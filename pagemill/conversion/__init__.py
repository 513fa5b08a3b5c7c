"""Pagemill as a library: convert documents in this process, with the workers' engines, limits and sandbox.

    from pagemill.conversion import JobOptions, OutputFormat, convert_document

    result = convert_document("report.pdf", JobOptions(engine="tesseract"))
    print(result.page_count, result.pages_done, result.timings_ms["total"])
    for page in result.pages:
        print(page.number, page.engine, page.text if page.ok else page.error)
    result.write(Path("out/report"), [OutputFormat.MARKDOWN])  # out/report.md, as the server's result

`pagemill convert` is built on :func:`convert_document`. See docs/library.md.
"""

from pagemill.conversion.document import convert_document
from pagemill.conversion.progress import NO_PROGRESS, NoProgress, ProgressCallback
from pagemill.conversion.result import (
    RESULT_SUFFIXES,
    ConversionResult,
    ConvertedPage,
    PageError,
)
from pagemill.documents.kinds import DocumentKind
from pagemill.jobs.options import JobOptions, OcrMode, OutputFormat

__all__ = [
    "NO_PROGRESS",
    "RESULT_SUFFIXES",
    "ConversionResult",
    "ConvertedPage",
    "DocumentKind",
    "JobOptions",
    "NoProgress",
    "OcrMode",
    "OutputFormat",
    "PageError",
    "ProgressCallback",
    "convert_document",
]
