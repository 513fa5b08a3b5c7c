"""Time limits per kind of page work (``worker.time_limits``): soft and hard, in seconds.

Each kind has its own class so that a group set in part (one field from the environment, say) keeps the
other field's default of that kind: pydantic rebuilds a partly given group from its class.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, model_validator


class WorkKind(StrEnum):
    """A kind of page work with its own time limit (the ``kind`` label of
    ``pagemill_processing_timeouts_total`` and ``details.kind`` of a PROCESSING_TIMEOUT)."""

    IMAGE_PAGE = "image_page"
    DOCUMENT_PAGE = "document_page"
    TEXT_CHUNK = "text_chunk"
    AUDIO_CHUNK = "audio_chunk"


_SOFT = (
    "Soft limit, s: calls made for the work (OCR processes, model server requests, render processes) get "
    "at most what is left of it as their timeout, and the work ends PROCESSING_TIMEOUT once it is spent."
)
_HARD = (
    "Hard limit, s (above the soft one): in a prefork worker an alarm interrupts in-process work that "
    "cannot be given a timeout (PDF text extraction and rendering, in-process OCR) at this point."
)


class TimeLimit(BaseModel):
    """A soft and a hard time limit, soft below hard."""

    soft_s: float = Field(default=150.0, gt=0, description=_SOFT)
    hard_s: float = Field(default=180.0, gt=0, description=_HARD)

    @model_validator(mode="after")
    def _soft_below_hard(self) -> Self:
        if self.soft_s >= self.hard_s:
            raise ValueError(f"soft_s ({self.soft_s:g}) must be below hard_s ({self.hard_s:g})")
        return self


class ImagePageLimit(TimeLimit):
    """OCR of one page of an image document (a photo or scan: large, dense)."""

    soft_s: float = Field(default=270.0, gt=0, description=_SOFT)
    hard_s: float = Field(default=300.0, gt=0, description=_HARD)


class DocumentPageLimit(TimeLimit):
    """OCR of one rendered page of a PDF."""

    soft_s: float = Field(default=150.0, gt=0, description=_SOFT)
    hard_s: float = Field(default=180.0, gt=0, description=_HARD)


class TextChunkLimit(TimeLimit):
    """One chunk of text-layer pages (up to ``worker.pages_per_task``) read by one claim."""

    soft_s: float = Field(
        default=50.0,
        gt=0,
        description="Soft limit, s: checked between pages; a chunk past it stops, keeps what it read and "
        "gives its unread pages back (read by the next task, their attempt not counted).",
    )
    hard_s: float = Field(default=60.0, gt=0, description=_HARD)


class AudioChunkLimit(TimeLimit):
    """Transcription of one piece of a recording (at most 30 s of audio), fallbacks included."""

    soft_s: float = Field(default=100.0, gt=0, description=_SOFT)
    hard_s: float = Field(default=120.0, gt=0, description=_HARD)


class TimeLimitSettings(BaseModel):
    """Soft and hard time limits per kind of page work (defaults: image page 5 min, document page 3 min,
    text-layer chunk 1 min, audio piece 2 min). Celery's task limits stay above every hard limit."""

    image_page: ImagePageLimit = Field(
        default_factory=ImagePageLimit, description="OCR of a page of an image document."
    )
    document_page: DocumentPageLimit = Field(
        default_factory=DocumentPageLimit, description="OCR of a rendered PDF page."
    )
    text_chunk: TextChunkLimit = Field(
        default_factory=TextChunkLimit, description="A chunk of text-layer pages read by one claim."
    )
    audio_chunk: AudioChunkLimit = Field(
        default_factory=AudioChunkLimit, description="Transcription of one piece of a recording."
    )

    def of(self, kind: WorkKind) -> TimeLimit:
        """The limit of ``kind``."""
        limit: TimeLimit = getattr(self, kind.value)
        return limit

    def longest_hard_s(self) -> float:
        """The largest hard limit of any kind."""
        return max(self.of(kind).hard_s for kind in WorkKind)
