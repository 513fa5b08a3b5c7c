"""Pagemill: a self-hosted document-to-text job API.

The in-process library is :mod:`pagemill.conversion`; its main names are also here
(``pagemill.convert_document``), loaded on first use so that ``import pagemill`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pagemill.conversion import (
        ConversionResult,
        ConvertedPage,
        JobOptions,
        NoProgress,
        OcrMode,
        OutputFormat,
        PageError,
        ProgressCallback,
        convert_document,
    )

_LIBRARY = frozenset(
    {
        "ConversionResult",
        "ConvertedPage",
        "JobOptions",
        "NoProgress",
        "OcrMode",
        "OutputFormat",
        "PageError",
        "ProgressCallback",
        "convert_document",
    }
)


def __getattr__(name: str) -> Any:
    """Load the library's names (:mod:`pagemill.conversion`: engines, pdfium, Pillow) only when asked."""
    if name in _LIBRARY:
        from pagemill import conversion

        return getattr(conversion, name)
    raise AttributeError(f"module 'pagemill' has no attribute {name!r}")


__all__ = [
    "ConversionResult",
    "ConvertedPage",
    "JobOptions",
    "NoProgress",
    "OcrMode",
    "OutputFormat",
    "PageError",
    "ProgressCallback",
    "__version__",
    "convert_document",
]
