"""What :func:`~pagemill.conversion.convert_document` tells its caller while it works."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pagemill.conversion.result import ConversionResult, ConvertedPage


class ProgressCallback(Protocol):
    """Receives a conversion's progress, in the converting thread, in this order: ``page_started`` and
    ``page_completed`` for each selected page, then ``conversion_completed`` once (not called when the
    document itself fails: :func:`~pagemill.conversion.convert_document` raises instead).

    Subclass :class:`NoProgress` to implement only the methods you need. A callback that raises stops the
    conversion with its exception.
    """

    def page_started(self, number: int, total: int) -> None:
        """Page ``number`` (1-based, as in the document) is about to be read; ``total`` pages are selected."""
        ...

    def page_completed(self, page: ConvertedPage, total: int) -> None:
        """``page`` was read (``page.state == "done"``) or failed (``page.error`` says why)."""
        ...

    def conversion_completed(self, result: ConversionResult) -> None:
        """Every selected page was read or failed; ``result`` is what the call returns."""
        ...


class NoProgress:
    """The default callback: ignores everything. A base class for callbacks that want a few events only."""

    def page_started(self, number: int, total: int) -> None:
        """Ignored."""

    def page_completed(self, page: ConvertedPage, total: int) -> None:
        """Ignored."""

    def conversion_completed(self, result: ConversionResult) -> None:
        """Ignored."""


NO_PROGRESS = NoProgress()
